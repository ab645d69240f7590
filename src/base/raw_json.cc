#include "base/raw_json.h"

#include <cstdint>

#include "base/json_builder.h"

namespace j2v {
namespace {
// The binary subtype that marks text rather than bytes ('J'); nlohmann subtypes are 0-255.
constexpr std::uint64_t kRawJsonSubtype = 0x4a;
}  // namespace

nlohmann::json raw_json(std::string_view text) {
  return nlohmann::json::binary(std::vector<std::uint8_t>(text.begin(), text.end()), kRawJsonSubtype);
}

bool is_raw_json(const nlohmann::json& value) {
  if (!value.is_binary()) return false;
  const auto& bytes = value.get_binary();
  return bytes.has_subtype() && bytes.subtype() == kRawJsonSubtype;
}

std::string_view raw_json_text(const nlohmann::json& value) {
  const auto& bytes = value.get_binary();
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void materialize_raw_json(nlohmann::json& value) {
  if (is_raw_json(value)) {
    auto text = raw_json_text(value);
    value = nlohmann::json::parse(text.begin(), text.end());
    return;
  }
  if (value.is_structured())
    for (auto& child : value) materialize_raw_json(child);
}

std::string dump_with_raw_json(const nlohmann::json& value) {
  std::string out;
  JsonTextBuilder(out).value(value);
  return out;
}

}  // namespace j2v
