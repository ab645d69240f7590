#include "base/json_read.h"

#include <limits>
#include <stdexcept>

namespace j2v {
namespace {
// Enough of a bad value to recognise it, never a whole damaged document.
std::string shown(const nlohmann::json& value) {
  std::string text = value.dump();
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}
}  // namespace

int64_t as_integer(const nlohmann::json& value, const std::string& what) {
  if (value.is_number_unsigned()) {
    auto v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(v);
  } else if (value.is_number_integer()) {
    return value.get<int64_t>();
  }
  throw std::invalid_argument("'" + what + "' must be an integer in int64 range, got " + shown(value));
}

int64_t read_integer(const nlohmann::json& object, const std::string& key, int64_t fallback) {
  if (!object.is_object()) throw std::invalid_argument("expected an object holding '" + key + "', got " + shown(object));
  auto it = object.find(key);
  if (it == object.end()) return fallback;
  return as_integer(*it, key);
}

std::vector<int64_t> read_integers(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object()) throw std::invalid_argument("expected an object holding '" + key + "', got " + shown(object));
  auto it = object.find(key);
  if (it == object.end()) return {};
  if (!it->is_array()) throw std::invalid_argument("'" + key + "' must be a list of integers, got " + shown(*it));
  std::vector<int64_t> out;
  out.reserve(it->size());
  for (const auto& v : *it) out.push_back(as_integer(v, key));
  return out;
}

}  // namespace j2v
