#include "base/raw_json.h"

#include <cstdint>

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

namespace {
void append_with_raw_json(std::string& out, const nlohmann::json& value) {
  if (is_raw_json(value)) {
    out += raw_json_text(value);
  } else if (value.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, child] : value.items()) {
      if (!first) out += ',';
      first = false;
      out += nlohmann::json(key).dump();
      out += ':';
      append_with_raw_json(out, child);
    }
    out += '}';
  } else if (value.is_array()) {
    out += '[';
    for (size_t i = 0; i < value.size(); ++i) {
      if (i) out += ',';
      append_with_raw_json(out, value[i]);
    }
    out += ']';
  } else {
    out += value.dump();
  }
}
}  // namespace

std::string dump_with_raw_json(const nlohmann::json& value) {
  std::string out;
  append_with_raw_json(out, value);
  return out;
}

}  // namespace j2v
