#include "base/json_builder.h"

#include "base/raw_json.h"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace j2v {

void append_json_number(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buffer[32];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)error;  // 32 characters hold any double
  out.append(buffer, end);
  // "1.0", not "1": a reader that types columns by their first value sees a float.
  if (std::string_view(buffer, end - buffer).find_first_of(".e") == std::string_view::npos) out += ".0";
}

void JsonTextBuilder::separate() {
  if (after_value_) out_ += ',';
}

void JsonTextBuilder::open(char bracket) {
  separate();
  out_ += bracket;
  after_value_ = false;
}

void JsonTextBuilder::close(char bracket) {
  out_ += bracket;
  after_value_ = true;
}

void JsonTextBuilder::begin_object() { open('{'); }
void JsonTextBuilder::end_object() { close('}'); }
void JsonTextBuilder::begin_array() { open('['); }
void JsonTextBuilder::end_array() { close(']'); }

void append_json_string(std::string& out, std::string_view text) {
  // Field addresses, payload keys and labels are mostly plain ASCII: quoted as they are.
  bool plain = true;
  for (char c : text) plain = plain && c >= 0x20 && c != '"' && c != '\\' && static_cast<unsigned char>(c) < 0x80;
  if (plain) {
    out += '"';
    out += text;
    out += '"';
  } else {
    out += nlohmann::json(text).dump();  // escaped as nlohmann escapes it
  }
}

void JsonTextBuilder::key(std::string_view name) {
  separate();
  append_json_string(out_, name);
  out_ += ':';
  after_value_ = false;
}

void JsonTextBuilder::number(float value) {
  separate();
  append_json_number(out_, value);
  after_value_ = true;
}

void JsonTextBuilder::numbers(const float* values, int64_t count) {
  separate();
  out_ += '[';
  for (int64_t i = 0; i < count; ++i) {
    if (i) out_ += ',';
    append_json_number(out_, values[i]);
  }
  out_ += ']';
  after_value_ = true;
}

void JsonTextBuilder::value(const nlohmann::json& value) {
  if (value.is_object()) {
    begin_object();
    for (const auto& [name, child] : value.items()) {
      key(name);
      this->value(child);
    }
    end_object();
  } else if (value.is_array()) {
    begin_array();
    for (const auto& child : value) this->value(child);
    end_array();
  } else {
    separate();
    if (is_raw_json(value)) out_ += raw_json_text(value);
    else out_ += value.dump();  // a scalar, spelled as dump() spells it
    after_value_ = true;
  }
}

nlohmann::json* JsonTreeBuilder::put(nlohmann::json value) {
  if (open_.empty()) {
    root_ = std::move(value);
    return &root_;
  }
  nlohmann::json& parent = *open_.back();
  if (parent.is_object()) return &(parent[key_] = std::move(value));
  parent.push_back(std::move(value));
  return &parent.back();
}

void JsonTreeBuilder::begin_object() { open_.push_back(put(nlohmann::json::object())); }
void JsonTreeBuilder::begin_array() { open_.push_back(put(nlohmann::json::array())); }

void JsonTreeBuilder::end_object() {
  if (open_.empty() || !open_.back()->is_object()) throw std::logic_error("JsonTreeBuilder: end_object outside an object");
  open_.pop_back();
}

void JsonTreeBuilder::end_array() {
  if (open_.empty() || !open_.back()->is_array()) throw std::logic_error("JsonTreeBuilder: end_array outside an array");
  open_.pop_back();
}

void JsonTreeBuilder::key(std::string_view name) { key_.assign(name); }

void JsonTreeBuilder::number(float value) { put(static_cast<double>(value)); }

void JsonTreeBuilder::numbers(const float* values, int64_t count) { put(std::vector<float>(values, values + count)); }

void JsonTreeBuilder::value(const nlohmann::json& value) { put(value); }

nlohmann::json JsonTreeBuilder::take() {
  open_.clear();
  return std::exchange(root_, nullptr);
}

}  // namespace j2v
