#include "cli/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>

namespace j2v::cli {
namespace {

using json = nlohmann::json;

struct SectionInfo {
  const char* name;
  const char* help;
};

// Display order of sections in help and print-config.
const std::vector<SectionInfo>& sections() {
  static const std::vector<SectionInfo> kSections = {
      {"model", "network architecture and the fields of each record"},
      {"data", "input files and batching"},
      {"optimizer", "optimizer and its hyper-parameters"},
      {"scheduler", "learning-rate schedule, stepped once per optimizer step"},
      {"trainer", "training loop: duration, batch limits, logging"},
      {"checkpoint", "which checkpoints to keep (needs trainer.enable_checkpointing)"},
      {"early_stopping", "stop training when the monitored metric stops improving"},
      {"prediction_writer", "where and how predict writes its output (PredictionWriter)"},
  };
  return kSections;
}

// Sections renamed since they were first released: the old name still reads as the new one.
std::string current_section_name(const std::string& name) {
  if (name == "writer") return "prediction_writer";  // the PredictionWriter's section in 0.1
  return name;
}

constexpr const char* kFieldsKey = "model.fields";
// Top-level keys outside the sections: LightningCLI's lr_scheduler component and links.
constexpr const char* kSchedulerComponent = "lr_scheduler";
constexpr const char* kLinks = "link_arguments";

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Closest candidate, if close enough to be a plausible typo rather than an
// unrelated word (short names only tolerate one edit).
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& candidate : candidates) {
    size_t distance = edit_distance(word, candidate);
    size_t tolerance = std::max<size_t>(1, std::min(word.size(), candidate.size()) / 3);
    if (distance <= tolerance && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------
// YAML 1.2 core-schema scalar resolution. yaml-cpp leaves every scalar as
// text, so the typing has to happen here; the core schema (not YAML 1.1) is
// used so that "no", "on" or "y" stay strings, as field names and values
// often look like that.

bool all_digits(std::string_view s, size_t from, int base) {
  if (from >= s.size()) return false;
  for (size_t i = from; i < s.size(); ++i) {
    char c = s[i];
    bool ok = base == 16  ? std::isxdigit(static_cast<unsigned char>(c)) != 0
              : base == 8 ? (c >= '0' && c <= '7')
                          : (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::optional<json> parse_yaml_int(const std::string& s) {
  int base = 10;
  size_t digits_from = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    base = s[1] == 'x' ? 16 : 8;
    digits_from = 2;
  }
  if (!all_digits(s, digits_from, base)) return std::nullopt;
  const std::string digits = base == 10 ? s : s.substr(2);
  errno = 0;
  long long value = std::strtoll(digits.c_str(), nullptr, base);
  if (errno == 0) return json(static_cast<std::int64_t>(value));
  if (digits[0] != '-') {
    errno = 0;
    unsigned long long big = std::strtoull(digits.c_str(), nullptr, base);
    if (errno == 0) return json(static_cast<std::uint64_t>(big));
  }
  // Beyond every integer type: keep the magnitude so that validation reports
  // "expected int, got 1e+30" instead of mistaking it for a name.
  if (base == 10) return json(std::strtod(digits.c_str(), nullptr));
  return std::nullopt;
}

std::optional<json> parse_yaml_float(const std::string& s) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    return json(negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return json(std::numeric_limits<double>::quiet_NaN());
  // [0-9]* ( \. [0-9]* )? ( [eE] [-+]? [0-9]+ )? with at least one mantissa digit.
  size_t i = 0, mantissa_digits = 0;
  while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++mantissa_digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++mantissa_digits;
  }
  if (mantissa_digits == 0) return std::nullopt;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    size_t exponent_from = i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i;
    if (i == exponent_from) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  return json(std::strtod(s.c_str(), nullptr));
}

std::optional<bool> parse_yaml_bool(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

bool is_yaml_null(const std::string& s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

json resolve_plain_scalar(const std::string& s) {
  if (is_yaml_null(s)) return nullptr;
  if (auto b = parse_yaml_bool(s)) return *b;
  if (auto i = parse_yaml_int(s)) return *i;
  if (auto f = parse_yaml_float(s)) return *f;
  return s;
}

json scalar_to_json(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  const std::string& text = node.Scalar();
  // "!" marks a quoted or block scalar: the author asked for a string.
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return text;
  if (tag == "?" || tag.empty()) return resolve_plain_scalar(text);
  std::optional<json> typed;
  if (tag == "tag:yaml.org,2002:int")
    typed = parse_yaml_int(text);
  else if (tag == "tag:yaml.org,2002:float")
    typed = parse_yaml_float(text);
  else if (tag == "tag:yaml.org,2002:bool") {
    if (auto b = parse_yaml_bool(text)) typed = json(*b);
  } else if (tag == "tag:yaml.org,2002:null") {
    if (is_yaml_null(text)) typed = json(nullptr);
  } else {
    return resolve_plain_scalar(text);  // unknown local tags carry no type meaning here
  }
  if (!typed) {
    throw ConfigError(
        fmt::format("YAML scalar '{}' at line {} does not match its tag {}", text, node.Mark().line + 1, tag));
  }
  return *typed;
}

// ---------------------------------------------------------------------------
// Rendering values in messages and YAML.

std::string describe(const json& value) {
  if (value.is_string()) return "'" + value.get<std::string>() + "'";
  if (value.is_object()) return "a mapping";
  if (value.is_array()) return "a list";
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (std::isnan(d)) return ".nan";
    if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  }
  return value.dump();
}

std::string format_float(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  // nlohmann prints the shortest round-tripping form and keeps ".0" on
  // integral values, so 1.0 does not come back as the int 1 (which means
  // "one batch" rather than "all batches" for trainer.limit_*).
  return json(d).dump();
}

bool is_plain_safe(const std::string& s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  unsigned char first = static_cast<unsigned char>(s.front());
  if (!(std::isalnum(first) || first == '_' || first == '.' || first == '/' || first >= 0x80)) return false;
  for (unsigned char c : s) {
    bool ok = std::isalnum(c) || c == ' ' || c == '_' || c == '-' || c == '.' || c == '/' || c == '+' || c >= 0x80;
    if (!ok) return false;
  }
  if (!resolve_plain_scalar(s).is_string()) return false;
  // YAML 1.1 readers (PyYAML and friends) would read these as booleans.
  static const char* const kYaml11Bools[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no",
                                             "No", "NO", "on",  "On",  "ON",  "off", "Off", "OFF"};
  for (const char* word : kYaml11Bools) {
    if (s == word) return false;
  }
  return true;
}

std::string yaml_string(const std::string& s) {
  if (is_plain_safe(s)) return s;
  // A JSON string literal is a valid YAML double-quoted scalar.
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string yaml_scalar(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return value.dump();
    case json::value_t::number_float:
      return format_float(value.get<double>());
    case json::value_t::string:
      return yaml_string(value.get<std::string>());
    case json::value_t::object:
      return "{}";  // only reached when empty
    case json::value_t::array:
      return "[]";  // only reached when empty
    default:
      return value.dump();
  }
}

void emit_sequence(std::ostringstream& out, const json& list, int indent);

// json objects iterate alphabetically; a field's "type" reads best first.
std::vector<std::string> display_order(const json& object) {
  std::vector<std::string> keys;
  if (object.contains("type")) keys.push_back("type");
  for (const auto& item : object.items()) {
    if (item.key() != "type") keys.push_back(item.key());
  }
  return keys;
}

void emit_value(std::ostringstream& out, const json& value, int indent);

void emit_mapping_entries(std::ostringstream& out, const json& object, int indent,
                          const std::vector<std::string>& order) {
  for (const auto& key : order) {
    const json& value = object.at(key);
    out << std::string(indent, ' ') << yaml_string(key) << ":";
    emit_value(out, value, indent + 2);
  }
}

void emit_sequence(std::ostringstream& out, const json& list, int indent) {
  for (const auto& value : list) {
    out << std::string(indent, ' ') << "-";
    emit_value(out, value, indent + 2);
  }
}

// What follows a key's colon or a list's dash: a non-empty collection on the next lines,
// indented; anything else on the same line.
void emit_value(std::ostringstream& out, const json& value, int indent) {
  if (value.is_object() && !value.empty()) {
    out << "\n";
    emit_mapping_entries(out, value, indent, display_order(value));
  } else if (value.is_array() && !value.empty()) {
    out << "\n";
    emit_sequence(out, value, indent);
  } else {
    out << " " << yaml_scalar(value) << "\n";
  }
}

// ---------------------------------------------------------------------------
// Schema lookups.

const KeySpec* find_spec(const std::string& dotted) {
  static const std::map<std::string, const KeySpec*> kIndex = [] {
    std::map<std::string, const KeySpec*> index;
    for (const auto& spec : config_keys()) index[spec.key] = &spec;
    return index;
  }();
  auto it = kIndex.find(dotted);
  return it == kIndex.end() ? nullptr : it->second;
}

std::vector<std::string> section_names() {
  std::vector<std::string> names;
  for (const auto& section : sections()) names.push_back(section.name);
  return names;
}

bool is_section(const std::string& name) {
  const auto names = section_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<std::string> keys_of_section(const std::string& section) {
  std::vector<std::string> leaves;
  for (const auto& spec : config_keys()) {
    if (spec.key.compare(0, section.size() + 1, section + ".") == 0)
      leaves.push_back(spec.key.substr(section.size() + 1));
  }
  return leaves;
}

[[noreturn]] void throw_unknown_section(const std::string& section, const std::string& origin) {
  auto suggestion = closest(section, section_names());
  std::string hint = suggestion ? fmt::format("did you mean '{}'? ", *suggestion) : "";
  throw ConfigError(fmt::format("unknown config section '{}' ({}allowed sections: {}){}", section, hint,
                                join(section_names(), ", "), origin));
}

[[noreturn]] void throw_unknown_key(const std::string& section, const std::string& leaf, const std::string& origin) {
  const auto leaves = keys_of_section(section);
  std::string hint;
  if (auto suggestion = closest(leaf, leaves)) {
    hint = fmt::format("did you mean '{}.{}'? ", section, *suggestion);
  } else {
    // Right name, wrong section (say trainer.lr) is a common slip.
    for (const auto& spec : config_keys()) {
      if (spec.key.size() > leaf.size() + 1 &&
          spec.key.compare(spec.key.size() - leaf.size(), leaf.size(), leaf) == 0 &&
          spec.key[spec.key.size() - leaf.size() - 1] == '.') {
        hint = fmt::format("did you mean '{}'? ", spec.key);
        break;
      }
    }
  }
  throw ConfigError(fmt::format("unknown config key '{}.{}' ({}allowed in '{}': {}){}", section, leaf, hint, section,
                                join(leaves, ", "), origin));
}

// ---------------------------------------------------------------------------
// Type coercion: every accepted value is stored in its canonical JSON type so
// consumers can call get<T>() without caring how it was spelled.

std::string bound_text(double bound) {
  json as_json =
      (bound == std::floor(bound) && std::abs(bound) < 1e15) ? json(static_cast<std::int64_t>(bound)) : json(bound);
  return as_json.dump();
}

void check_bounds(const KeySpec& spec, double value, const json& original, const std::string& origin) {
  if (spec.minimum && value < *spec.minimum) {
    throw ConfigError(fmt::format("config key '{}': must be >= {}, got {}{}", spec.key, bound_text(*spec.minimum),
                                  describe(original), origin));
  }
  if (spec.maximum && value > *spec.maximum) {
    throw ConfigError(fmt::format("config key '{}': must be <= {}, got {}{}", spec.key, bound_text(*spec.maximum),
                                  describe(original), origin));
  }
}

// Strings that spell a number ("5" from a quoted YAML value) count as that
// number.
json numeric_view(const json& value) {
  if (value.is_string()) {
    std::string text = value.get<std::string>();
    if (auto i = parse_yaml_int(text)) return *i;
    if (auto f = parse_yaml_float(text)) return *f;
  }
  return value;
}

std::optional<std::int64_t> as_int64(const json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<std::int64_t>();
  if (value.is_number_unsigned()) {
    auto u = value.get<std::uint64_t>();
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return static_cast<std::int64_t>(u);
    return std::nullopt;
  }
  if (value.is_number_float()) {
    double d = value.get<double>();
    // 2^63 is exactly representable; anything at or beyond it is out of range.
    if (std::isfinite(d) && d == std::floor(d) && d >= -9.223372036854775808e18 && d < 9.223372036854775808e18) {
      return static_cast<std::int64_t>(d);
    }
  }
  return std::nullopt;
}

// A component is {class_path: NAME, init_args: {...}} (LightningCLI), {_target_: NAME, ...args}
// (Lighter), or just NAME; all become the first form.
json normalize_component(const json& value, const std::string& where, const std::string& origin) {
  if (value.is_string()) return {{"class_path", value}, {"init_args", json::object()}};
  if (!value.is_object())
    throw ConfigError(fmt::format("config key '{}': expected a component (class_path and init_args, or _target_), got {}{}",
                                  where, describe(value), origin));
  if (value.contains("_target_")) {
    if (!value["_target_"].is_string())
      throw ConfigError(fmt::format("config key '{}._target_': expected a class name, got {}{}", where,
                                    describe(value["_target_"]), origin));
    json args = value;
    args.erase("_target_");
    return {{"class_path", value["_target_"]}, {"init_args", args}};
  }
  if (!value.contains("class_path") || !value["class_path"].is_string())
    throw ConfigError(fmt::format("config key '{}': a component needs class_path (a registered name) or _target_{}",
                                  where, origin));
  for (const auto& [key, _] : value.items())
    if (key != "class_path" && key != "init_args")
      throw ConfigError(fmt::format("unknown config key '{}.{}' (a component has class_path and init_args){}", where, key,
                                    origin));
  json init_args = value.value("init_args", json::object());
  if (init_args.is_null()) init_args = json::object();
  if (!init_args.is_object())
    throw ConfigError(fmt::format("config key '{}.init_args': expected a mapping, got {}{}", where, describe(init_args),
                                  origin));
  return {{"class_path", value["class_path"]}, {"init_args", init_args}};
}

bool is_component(const json& value) {
  return value.is_object() && (value.contains("class_path") || value.contains("_target_"));
}

json coerce(const KeySpec& spec, const json& value, const std::string& origin) {
  auto mismatch = [&](const std::string& expected) {
    return ConfigError(
        fmt::format("config key '{}': expected {}, got {}{}", spec.key, expected, describe(value), origin));
  };
  const std::string& type = spec.type;
  if (type == "int") {
    auto number = as_int64(numeric_view(value));
    if (!number) throw mismatch("int");
    check_bounds(spec, static_cast<double>(*number), value, origin);
    return *number;
  }
  if (type == "float") {
    json number = numeric_view(value);
    if (!number.is_number() || !std::isfinite(number.get<double>())) throw mismatch("float");
    check_bounds(spec, number.get<double>(), value, origin);
    return number.get<double>();
  }
  if (type == "int_or_float") {
    json number = numeric_view(value);
    if (!number.is_number()) throw mismatch("int (a number of batches) or float (a fraction of batches)");
    if (number.is_number_float()) {
      double fraction = number.get<double>();
      if (!(fraction >= 0.0 && fraction <= 1.0)) {
        throw ConfigError(fmt::format("config key '{}': a float is a fraction and must lie in [0, 1], got {}{}",
                                      spec.key, describe(value), origin));
      }
      return fraction;
    }
    auto count = as_int64(number);
    if (!count) throw mismatch("int (a number of batches) or float (a fraction of batches)");
    check_bounds(spec, static_cast<double>(*count), value, origin);
    return *count;
  }
  if (type == "bool") {
    if (value.is_boolean()) return value;
    if (value.is_string()) {
      std::string text = value.get<std::string>();
      std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
      // The key is known to be boolean, so the YAML 1.1 spellings are
      // unambiguous here even though the generic parser keeps them strings.
      if (text == "true" || text == "yes" || text == "on") return true;
      if (text == "false" || text == "no" || text == "off") return false;
    }
    throw mismatch("bool");
  }
  if (type == "string" || type == "path?") {
    if (value.is_string()) return value;
    if (value.is_null() && type == "path?") return value;
    // A directory named 2024 arrives from YAML as an int; it is still a name.
    if (value.is_number_integer()) return value.dump();
    if (value.is_number_float() && std::isfinite(value.get<double>())) return format_float(value.get<double>());
    throw mismatch(type == "path?" ? "path or null" : "string");
  }
  if (type == "enum") {
    if (value.is_string()) {
      const std::string text = value.get<std::string>();
      if (std::find(spec.allowed.begin(), spec.allowed.end(), text) != spec.allowed.end()) return value;
      if (auto suggestion = closest(text, spec.allowed)) {
        throw ConfigError(fmt::format("config key '{}': expected one of {}, got {} (did you mean '{}'?){}", spec.key,
                                      join(spec.allowed, ", "), describe(value), *suggestion, origin));
      }
    }
    throw mismatch("one of " + join(spec.allowed, ", "));
  }
  if (type == "map") {
    if (value.is_null()) return json::object();
    if (!value.is_object()) throw mismatch("a mapping");
    if (spec.key == kFieldsKey) {
      for (const auto& item : value.items()) {
        if (item.key().empty()) throw ConfigError(fmt::format("config key '{}': empty field name{}", spec.key, origin));
        if (!item.value().is_string() && !item.value().is_object()) {
          throw ConfigError(
              fmt::format("config key '{}.{}': expected a field type (e.g. number) or an options "
                          "mapping (e.g. {{type: number, target: true}}), got {}{}",
                          spec.key, item.key(), describe(item.value()), origin));
        }
      }
    }
    return value;
  }
  if (type == "components" || type == "bool_or_components") {
    if (type == "bool_or_components" && value.is_boolean()) return value;
    if (value.is_null()) return json::array();
    // One component alone stands for a list of one.
    if (!value.is_array() && !value.is_object() && !value.is_string())
      throw mismatch("a list of components (class_path and init_args)");
    json list = value.is_array() ? value : json::array({value});
    json out = json::array();
    for (size_t i = 0; i < list.size(); ++i)
      out.push_back(normalize_component(list[i], fmt::format("{}[{}]", spec.key, i), origin));
    return out;
  }
  throw std::logic_error("config schema: unknown type '" + type + "' for " + spec.key);
}

// ---------------------------------------------------------------------------

std::string type_label(const KeySpec& spec) {
  if (spec.type == "enum") return join(spec.allowed, "|");
  if (spec.type == "path?") return "path or null";
  if (spec.type == "int_or_float") return "int or float";
  if (spec.type == "map") return "mapping";
  if (spec.type == "components") return "list of components";
  if (spec.type == "bool_or_components") return "bool or list of components";
  return spec.type;
}

class Resolver {
 public:
  Resolver() {
    for (const auto& section : sections()) config_[section.name] = json::object();
    for (const auto& spec : config_keys()) {
      auto dot = spec.key.find('.');
      config_[spec.key.substr(0, dot)][spec.key.substr(dot + 1)] = spec.default_value;
    }
    config_[kSchedulerComponent] = nullptr;
    config_[kLinks] = json::array();
  }

  void apply_document(const json& document, const std::string& origin) {
    if (document.is_null()) return;  // an empty file
    if (!document.is_object()) {
      throw ConfigError(
          fmt::format("config file {}: top level must be a mapping of sections, got {}", origin, describe(document)));
    }
    const std::string suffix = fmt::format(" (in {})", origin);
    for (const auto& [section, body] : document.items()) {
      apply_section(section, body, suffix);
    }
  }

  void apply_override(const std::string& raw) {
    std::string text = raw.rfind("--", 0) == 0 ? raw.substr(2) : raw;
    auto equals = text.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw ConfigError(fmt::format("config override '{}': expected key=value, e.g. trainer.max_epochs=10", raw));
    }
    const std::string dotted = text.substr(0, equals);
    const std::string suffix = fmt::format(" (from --{})", text);
    json value;
    try {
      value = parse_yaml(text.substr(equals + 1));
    } catch (const YAML::Exception& e) {
      throw ConfigError(fmt::format("config override '--{}': value is not valid YAML: {}", text, e.msg));
    } catch (const ConfigError& e) {
      throw ConfigError(fmt::format("config override '--{}': {}", text, e.what()));
    }

    auto path = split(dotted, '.');
    path[0] = current_section_name(path[0]);
    if (std::any_of(path.begin(), path.end(), [](const std::string& part) { return part.empty(); })) {
      throw ConfigError(fmt::format("config override '--{}': malformed key '{}'", text, dotted));
    }
    if (path.size() == 1) {
      apply_section(path[0], value, suffix);
      return;
    }
    // json2vec's own model and data (json2vec.Model, json2vec.DataModule) take their init_args as plain keys.
    if (path.size() > 2 && path[1] == "init_args" && is_section(path[0]) && !config_[path[0]].contains("class_path"))
      path.erase(path.begin() + 1);
    if (is_component_slot(path[0]) && (path[1] == "class_path" || path[1] == "init_args")) {
      override_component(path, value, suffix);
      return;
    }
    if (path[0] == kSchedulerComponent || path[0] == kLinks)
      throw ConfigError(fmt::format("config override '--{}': set {} as a whole or through .class_path / .init_args.KEY{}",
                                    text, path[0], ""));
    if (!is_section(path[0])) throw_unknown_section(path[0], suffix);
    if (config_[path[0]].contains("class_path"))
      throw ConfigError(fmt::format("config key '{}': '{}' is given by class_path ({}); set its arguments as "
                                    "--{}.init_args.{}{}",
                                    dotted, path[0], config_[path[0]]["class_path"].get<std::string>(), path[0],
                                    path[1], suffix));
    const std::string key = path[0] + "." + path[1];
    const KeySpec* spec = find_spec(key);
    if (!spec) throw_unknown_key(path[0], path[1], suffix);
    if (path.size() == 2) {
      set(*spec, value, suffix);
      return;
    }
    if (spec->type != "map") {
      throw ConfigError(fmt::format("unknown config key '{}' ('{}' takes a value of type {}, not a mapping){}", dotted,
                                    key, type_label(*spec), suffix));
    }
    set_inside_map(*spec, std::vector<std::string>(path.begin() + 2, path.end()), value, suffix);
  }

  json finish(bool require_fields, const ComponentCatalog* catalog) {
    complete_components(catalog);
    const json& model = config_["model"];
    if (model.contains("class_path")) {
      if (!config_["data"].contains("class_path"))
        throw ConfigError(fmt::format("config section 'data': the model is given by class_path ({}), so the data "
                                      "module must be too (data: {{class_path: ..., init_args: ...}})",
                                      model["class_path"].get<std::string>()));
      return config_;
    }
    if (config_["data"].contains("class_path"))
      throw ConfigError("config section 'data' is given by class_path, but the model is json2vec's own (model.fields): "
                        "json2vec's model reads its records through data.train/validate/test/predict");
    if (require_fields && model["fields"].empty()) {
      throw ConfigError(
          "config key 'model.fields' is required: map each field name to a type or options mapping, "
          "e.g. --model.fields.price=number or 'fields: {price: number}' under 'model:' in the config file");
    }
    // The rules that tie keys together are the model's own.
    try {
      model_options(config_).validate();
    } catch (const std::invalid_argument& e) {
      throw ConfigError(e.what());
    }
    return config_;
  }

 private:
  void apply_section(const std::string& given_section, const json& body, const std::string& suffix) {
    const std::string section = current_section_name(given_section);
    if (section == kSchedulerComponent) {
      config_[section] = body.is_null() ? json(nullptr) : normalize_component(body, section, suffix);
      return;
    }
    if (section == kLinks) {
      config_[section] = links(body, suffix);
      return;
    }
    if (!is_section(section)) throw_unknown_section(section, suffix);
    if (body.is_null()) return;  // "prediction_writer:" with nothing under it keeps the defaults
    if (is_component_slot(section) && (is_component(body) || body.is_string())) {
      set_component(section, normalize_component(body, section, suffix), suffix);
      return;
    }
    if (!body.is_object()) {
      throw ConfigError(
          fmt::format("config section '{}': expected a mapping, got {}{}", section, describe(body), suffix));
    }
    for (const auto& [leaf, value] : body.items()) {
      const KeySpec* spec = find_spec(section + "." + leaf);
      if (!spec) throw_unknown_key(section, leaf, suffix);
      set(*spec, value, suffix);
    }
  }

  static bool is_component_slot(const std::string& section) {
    return section == "model" || section == "data" || section == "optimizer" || section == kSchedulerComponent;
  }

  // json2vec's own model and data module by class path are the shorthand sections.
  static bool is_builtin(const std::string& section, const std::string& class_path) {
    return (section == "model" && (class_path == "json2vec.Model" || class_path == "j2v.Model")) ||
           (section == "data" && (class_path == "json2vec.DataModule" || class_path == "j2v.DataModule"));
  }

  void set_component(const std::string& section, const json& component, const std::string& suffix) {
    const std::string class_path = component["class_path"].get<std::string>();
    if (is_builtin(section, class_path)) {
      if (config_[section].contains("class_path")) restore_defaults(section);
      apply_section(section, component["init_args"], suffix);
      return;
    }
    config_[section] = component;
  }

  void restore_defaults(const std::string& section) {
    config_[section] = json::object();
    for (const auto& spec : config_keys())
      if (spec.key.compare(0, section.size() + 1, section + ".") == 0)
        config_[section][spec.key.substr(section.size() + 1)] = spec.default_value;
  }

  void override_component(const std::vector<std::string>& path, const json& value, const std::string& suffix) {
    const std::string& section = path[0];
    json current = config_[section];
    bool was_component = current.is_object() && current.contains("class_path");
    if (path[1] == "class_path") {
      if (!value.is_string())
        throw ConfigError(fmt::format("config key '{}.class_path': expected a registered name, got {}{}", section,
                                      describe(value), suffix));
      bool same = was_component && current["class_path"] == value;
      set_component(section, {{"class_path", value}, {"init_args", same ? current["init_args"] : json::object()}},
                    suffix);
      return;
    }
    if (!was_component)
      throw ConfigError(fmt::format("config key '{}.init_args': '{}' has no class_path; set --{}.class_path first{}",
                                    section, section, section, suffix));
    json init_args = current["init_args"];
    json* node = &init_args;
    for (size_t i = 2; i + 1 < path.size(); ++i) {
      json& child = (*node)[path[i]];
      if (child.is_null()) child = json::object();
      if (!child.is_object())
        throw ConfigError(fmt::format("config key '{}': cannot set '{}' inside {}{}", fmt::join(path, "."),
                                      path[i + 1], describe(child), suffix));
      node = &child;
    }
    if (path.size() == 2) {
      if (!value.is_object() && !value.is_null())
        throw ConfigError(fmt::format("config key '{}.init_args': expected a mapping{}", section, suffix));
      init_args = value.is_null() ? json::object() : value;
    } else if (value.is_null()) {
      node->erase(path.back());
    } else {
      (*node)[path.back()] = value;
    }
    current["init_args"] = init_args;
    config_[section] = current;
  }

  static json links(const json& body, const std::string& suffix) {
    if (body.is_null()) return json::array();
    if (!body.is_array())
      throw ConfigError(fmt::format("config key '{}': expected a list of {{source: data.NAME, target: "
                                    "model.init_args.NAME}}, got {}{}",
                                    kLinks, describe(body), suffix));
    for (size_t i = 0; i < body.size(); ++i) {
      const json& link = body[i];
      auto text = [&](const char* key) -> std::string {
        if (!link.is_object() || !link.contains(key) || !link[key].is_string())
          throw ConfigError(fmt::format("config key '{}[{}].{}': expected a dotted name (source: data.NAME, target: "
                                        "model.init_args.NAME){}",
                                        kLinks, i, key, suffix));
        return link[key].get<std::string>();
      };
      std::string source = text("source"), target = text("target");
      if (source.rfind("data.", 0) != 0 || source.size() <= 5)
        throw ConfigError(fmt::format("config key '{}[{}].source': '{}' must name a property of the data module "
                                      "(data.NAME){}",
                                      kLinks, i, source, suffix));
      if (target.rfind("model.init_args.", 0) != 0 || target.size() <= 16)
        throw ConfigError(fmt::format("config key '{}[{}].target': '{}' must name an argument of the model "
                                      "(model.init_args.NAME){}",
                                      kLinks, i, target, suffix));
      for (const auto& [key, _] : link.items())
        if (key != "source" && key != "target" && key != "apply_on")
          throw ConfigError(fmt::format("unknown config key '{}[{}].{}' (allowed: source, target, apply_on){}", kLinks,
                                        i, key, suffix));
      if (link.contains("apply_on") && link["apply_on"] != "instantiate")
        throw ConfigError(fmt::format("config key '{}[{}].apply_on': only 'instantiate' is supported{}", kLinks, i,
                                      suffix));
    }
    return body;
  }

  // Fills every component's init_args with its registered defaults, checking names and types.
  void complete_components(const ComponentCatalog* catalog) {
    if (!catalog) return;
    auto complete = [&](const std::string& kind, json& component, const std::string& where) {
      try {
        component["init_args"] = catalog->complete(kind, component["class_path"].get<std::string>(),
                                                   component["init_args"], where + ".init_args");
      } catch (const std::invalid_argument& e) {
        throw ConfigError(fmt::format("config key '{}': {}", where, e.what()));
      }
    };
    for (const char* section : {"model", "data", "optimizer", kSchedulerComponent})
      if (config_[section].is_object() && config_[section].contains("class_path"))
        complete(section, config_[section], section);
    json& callbacks = config_["trainer"]["callbacks"];
    for (size_t i = 0; i < callbacks.size(); ++i) complete("callback", callbacks[i], fmt::format("trainer.callbacks[{}]", i));
    json& loggers = config_["trainer"]["logger"];
    if (loggers.is_array())
      for (size_t i = 0; i < loggers.size(); ++i) complete("logger", loggers[i], fmt::format("trainer.logger[{}]", i));
  }

  json& slot(const KeySpec& spec) {
    auto dot = spec.key.find('.');
    return config_[spec.key.substr(0, dot)][spec.key.substr(dot + 1)];
  }

  void set(const KeySpec& spec, const json& value, const std::string& suffix) {
    slot(spec) = coerce(spec, value, suffix);
  }

  void set_inside_map(const KeySpec& spec, const std::vector<std::string>& path, const json& value,
                      const std::string& suffix) {
    json updated = slot(spec);
    if (!updated.is_object()) updated = json::object();
    json* node = &updated;
    std::string where = spec.key;
    for (size_t i = 0; i + 1 < path.size(); ++i) {
      // Removing something that is not there must not leave empty parents
      // behind (an empty field would then fail for lack of a type).
      if (value.is_null() && !(node->contains(path[i]) && (*node)[path[i]].is_object())) return;
      json& child = (*node)[path[i]];
      // Field shorthand: "cut: category" gains options by becoming
      // {type: category, ...}, so --model.fields.cut.max_vocab_size=8 works
      // whichever way the file spelled the field.
      if (i == 0 && child.is_string()) child = json{{"type", child.get<std::string>()}};
      if (child.is_null()) child = json::object();
      where += "." + path[i];
      if (!child.is_object()) {
        throw ConfigError(
            fmt::format("config key '{}': cannot set '{}' inside {}{}", where, path[i + 1], describe(child), suffix));
      }
      node = &child;
    }
    if (value.is_null()) {
      node->erase(path.back());  // null removes the entry, e.g. drops a field
    } else {
      (*node)[path.back()] = value;
    }
    set(spec, updated, suffix);
  }

  json config_;
};

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw ConfigError(fmt::format("config file '{}': no such file", path));
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(fmt::format("config file '{}': is a directory, not a file", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("config file '{}': cannot open (missing or unreadable)", path));
  // Read at most one byte past the limit: a device or pipe (/dev/zero) never ends.
  std::string content(kMaxConfigBytes + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  if (in.bad()) throw ConfigError(fmt::format("config file '{}': read error", path));
  content.resize(static_cast<size_t>(in.gcount()));
  if (content.size() > kMaxConfigBytes)
    throw ConfigError(fmt::format("config file '{}': larger than {} MiB; a config is a few KB", path,
                                  kMaxConfigBytes >> 20));
  return content;
}

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

json load_document(const std::string& path) {
  const std::string content = read_file(path);
  if (ends_with(path, ".json")) {
    try {
      return json::parse(content);
    } catch (const json::parse_error& e) {
      // The message of nlohmann carries the line and column.
      throw ConfigError(fmt::format("config file '{}': JSON syntax error: {}", path, e.what()));
    }
  }
  try {
    return parse_yaml(content);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("config file '{}': YAML syntax error at line {}, column {}: {}", path,
                                  e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("config file '{}': {}", path, e.what()));
  }
}

}  // namespace

namespace {

// Converts with a budget: yaml-cpp shares an aliased node instead of copying it, so a
// self-referencing alias (`a: &a [*a]`) is an infinite tree and nine levels of nine-fold
// aliases ("billion laughs") a tree of 10^9 nodes; both must stop with an error, not with
// the stack or the memory exhausted.
class YamlConverter {
 public:
  json convert(const YAML::Node& node, int depth) {
    if (depth > kMaxConfigDepth)
      throw ConfigError(fmt::format("line {}: nested deeper than {} levels (a recursive alias?)", node.Mark().line + 1,
                                    kMaxConfigDepth));
    if (++nodes_ > kMaxConfigNodes)
      throw ConfigError(fmt::format("more than {} values once aliases are expanded (aliases that multiply?)",
                                    kMaxConfigNodes));
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        return scalar_to_json(node);
      case YAML::NodeType::Sequence: {
        json list = json::array();
        for (const auto& item : node) list.push_back(convert(item, depth + 1));
        return list;
      }
      case YAML::NodeType::Map: {
        json object = json::object();
        for (const auto& item : node) {
          if (!item.first.IsScalar()) {
            throw ConfigError(fmt::format("line {}: mapping keys must be scalars", item.first.Mark().line + 1));
          }
          const std::string& key = item.first.Scalar();
          // yaml-cpp keeps both copies of a repeated key; silently picking one
          // would hide a mistake in the file.
          if (object.contains(key)) {
            throw ConfigError(fmt::format("line {}: duplicate key '{}'", item.first.Mark().line + 1, key));
          }
          object[key] = convert(item.second, depth + 1);
        }
        return object;
      }
    }
    return nullptr;
  }

 private:
  size_t nodes_ = 0;
};

// yaml-cpp's parser recurses once per level of `[` and `{`, so a line of 100,000 brackets
// overflows the stack before any check of ours could run: count them first (outside
// quotes and comments). Block nesting needs a line of indentation per level, which the
// size limit bounds.
void check_flow_depth(std::string_view text) {
  int depth = 0;
  size_t line = 1;
  char quote = 0;
  bool comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      comment = false;
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c == '\\' && quote == '"') ++i;
      else if (c == quote) quote = 0;
      continue;
    }
    char before = i == 0 ? ' ' : text[i - 1];
    bool starts_scalar = before == ' ' || before == '\t' || before == '\n' || before == ':' || before == ',' ||
                         before == '[' || before == '{' || before == '-';
    if ((c == '"' || c == '\'') && starts_scalar) quote = c;  // not the apostrophe of "don't"
    else if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n')) comment = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxConfigDepth)
        throw ConfigError(fmt::format("line {}: nested deeper than {} levels", line, kMaxConfigDepth));
    } else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
}

}  // namespace

nlohmann::json yaml_to_json(const YAML::Node& node) { return YamlConverter().convert(node, 0); }

nlohmann::json parse_yaml(const std::string& text) {
  check_flow_depth(text);
  return yaml_to_json(YAML::Load(text));
}

nlohmann::json resolve_config(const std::optional<std::string>& path, const std::vector<std::string>& overrides,
                              bool require_fields, const ComponentCatalog* catalog) {
  Resolver resolver;
  if (path) resolver.apply_document(load_document(*path), "'" + *path + "'");
  for (const auto& text : overrides) resolver.apply_override(text);
  return resolver.finish(require_fields, catalog);
}

std::string to_yaml(const nlohmann::json& config) {
  std::ostringstream out;
  // Schema order reads better than the alphabetical order of json objects;
  // anything outside the schema still comes out, after it.
  std::vector<std::string> section_order;
  for (const auto& section : sections()) {
    if (config.contains(section.name)) section_order.push_back(section.name);
  }
  for (const auto& item : config.items()) {
    if (!is_section(item.key())) section_order.push_back(item.key());
  }
  for (const auto& section : section_order) {
    const json& body = config.at(section);
    if (body.is_array() && !body.empty()) {
      out << yaml_string(section) << ":\n";
      emit_sequence(out, body, 2);
      continue;
    }
    if (!body.is_object() || body.empty()) {
      out << yaml_string(section) << ": " << yaml_scalar(body) << "\n";
      continue;
    }
    std::vector<std::string> key_order;
    for (const auto& leaf : keys_of_section(section)) {
      if (body.contains(leaf)) key_order.push_back(leaf);
    }
    for (const auto& item : body.items()) {
      if (std::find(key_order.begin(), key_order.end(), item.key()) == key_order.end()) key_order.push_back(item.key());
    }
    out << yaml_string(section) << ":\n";
    emit_mapping_entries(out, body, 2, key_order);
  }
  return out.str();
}

std::string config_help() {
  std::ostringstream out;
  out << "Configuration keys. Set them in a YAML (or JSON) config file, one mapping per section, or on\n"
         "the command line as --section.key=value, where values are YAML (null, true, 0.5, {type: number});\n"
         "the command line wins. Fields can be set one by one: --model.fields.NAME=TYPE or\n"
         "--model.fields.NAME.OPTION=value; NAME=null removes a field.\n";
  for (const auto& section : sections()) {
    out << "\n" << section.name << ": " << section.help << "\n";
    for (const auto& spec : config_keys()) {
      if (spec.key.compare(0, std::strlen(section.name) + 1, std::string(section.name) + ".") != 0) continue;
      std::string bounds;
      if (spec.minimum && spec.maximum) {
        bounds = fmt::format(", {}..{}", bound_text(*spec.minimum), bound_text(*spec.maximum));
      } else if (spec.minimum) {
        bounds = fmt::format(", >= {}", bound_text(*spec.minimum));
      }
      std::string default_text = spec.key == kFieldsKey ? "required" : "default: " + yaml_scalar(spec.default_value);
      out << fmt::format("  --{} ({}{}; {})\n      {}\n", spec.key, type_label(spec), bounds, default_text, spec.help);
    }
  }
  return out.str();
}

}  // namespace j2v::cli
