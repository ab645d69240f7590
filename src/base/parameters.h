#pragma once
// Options declared once, after XGBoost's parameter declarations: an options struct lists its
// parameters (name, help, bounds or allowed values) beside the members they set, and its
// defaults are the struct's own initial values. Registries, the config file's key table,
// --help and --print_config read the declaration; from_json() and check() enforce it.
//
//   const Parameters<EarlyStoppingOptions>& EarlyStoppingOptions::parameters() {
//     static const auto p = Parameters<EarlyStoppingOptions>()
//         .add("patience", &EarlyStoppingOptions::patience_, "checks without improvement before stopping").at_least(0)
//         .add("mode", &EarlyStoppingOptions::mode_, "whether lower or higher is better").one_of({"min", "max"});
//     return p;
//   }
#include <fmt/format.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace j2v {

// A value a declaration refuses; the message names the key and what is allowed.
class ParameterError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// One declared parameter, as help texts and config schemas show it.
struct ParameterInfo {
  std::string name;
  std::string type;  // int | float | bool | string | enum | string? / int? (or null) | int_or_float
  nlohmann::json default_value;
  std::vector<std::string> allowed;  // enum
  std::string help;
  std::optional<double> minimum, maximum;  // inclusive
};

namespace detail {
// How a member type is read, written, bounded and named. A layer with its own option types
// (the engine's BatchLimit) specializes ParameterTraits for them.
template <typename T>
struct ValueTraits {
  static nlohmann::json to_json(const T& v) { return nlohmann::json(v); }
  static T from_json(const nlohmann::json& v) { return v.get<T>(); }
  static std::optional<double> number(const T& v) {
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) return static_cast<double>(v);
    return std::nullopt;
  }
  static const std::string* text(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) return &v;
    return nullptr;
  }
};
template <typename T>
struct ParameterTraits;
template <>
struct ParameterTraits<std::string> : ValueTraits<std::string> {
  static constexpr const char* type = "string";
  static bool accepts(const nlohmann::json& v) { return v.is_string(); }
};
template <>
struct ParameterTraits<bool> : ValueTraits<bool> {
  static constexpr const char* type = "bool";
  static bool accepts(const nlohmann::json& v) { return v.is_boolean(); }
};
template <>
struct ParameterTraits<double> : ValueTraits<double> {
  static constexpr const char* type = "float";
  static bool accepts(const nlohmann::json& v) { return v.is_number(); }
};
template <>
struct ParameterTraits<int64_t> : ValueTraits<int64_t> {
  static constexpr const char* type = "int";
  static bool accepts(const nlohmann::json& v) { return v.is_number_integer(); }
};
template <>
struct ParameterTraits<int> : ValueTraits<int> {
  static constexpr const char* type = "int";
  static bool accepts(const nlohmann::json& v) { return v.is_number_integer(); }
};
template <>
struct ParameterTraits<uint64_t> : ValueTraits<uint64_t> {
  static constexpr const char* type = "int";
  static bool accepts(const nlohmann::json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); }
};
// A value or nothing (a pattern not given, a seed not set): null, or what T accepts.
template <typename T>
struct OptionalTraits {
  static bool accepts(const nlohmann::json& v) { return v.is_null() || ParameterTraits<T>::accepts(v); }
  static nlohmann::json to_json(const std::optional<T>& v) {
    return v ? ParameterTraits<T>::to_json(*v) : nlohmann::json(nullptr);
  }
  static std::optional<T> from_json(const nlohmann::json& v) {
    if (v.is_null()) return std::nullopt;
    return ParameterTraits<T>::from_json(v);
  }
  static std::optional<double> number(const std::optional<T>& v) {
    return v ? ParameterTraits<T>::number(*v) : std::nullopt;
  }
  static const std::string* text(const std::optional<T>& v) { return v ? ParameterTraits<T>::text(*v) : nullptr; }
};
template <>
struct ParameterTraits<std::optional<std::string>> : OptionalTraits<std::string> {
  static constexpr const char* type = "string?";
};
template <>
struct ParameterTraits<std::optional<int64_t>> : OptionalTraits<int64_t> {
  static constexpr const char* type = "int?";
};

inline std::string bound_text(double v) {
  return v == static_cast<double>(static_cast<int64_t>(v)) ? std::to_string(static_cast<int64_t>(v)) : fmt::format("{}", v);
}
}  // namespace detail

template <typename Options>
class Parameters {
  struct Entry {
    ParameterInfo info;
    std::function<nlohmann::json(const Options&)> get;
    std::function<void(Options&, const nlohmann::json&)> set;
    std::function<std::optional<double>(const Options&)> number;
    std::function<const std::string*(const Options&)> text;
  };

 public:
  // Declares `name`, stored in `member`; bounds and allowed values follow it.
  template <typename T>
  Parameters& add(const char* name, T Options::*member, std::string help) {
    using Traits = detail::ParameterTraits<T>;
    Entry e;
    e.info.name = name;
    e.info.type = Traits::type;
    e.info.help = std::move(help);
    e.info.default_value = Traits::to_json(Options{}.*member);
    e.get = [member](const Options& o) { return Traits::to_json(o.*member); };
    e.set = [member](Options& o, const nlohmann::json& v) {
      if (!Traits::accepts(v)) throw ParameterError(fmt::format("expected {}, got {}", Traits::type, v.dump()));
      o.*member = Traits::from_json(v);
    };
    e.number = [member](const Options& o) { return Traits::number(o.*member); };
    e.text = [member](const Options& o) { return Traits::text(o.*member); };
    entries_.push_back(std::move(e));
    return *this;
  }
  // Bounds and allowed values of the parameter declared last.
  Parameters& at_least(double minimum) { return last().info.minimum = minimum, *this; }
  Parameters& at_most(double maximum) { return last().info.maximum = maximum, *this; }
  Parameters& between(double minimum, double maximum) { return at_least(minimum).at_most(maximum); }
  Parameters& one_of(std::vector<std::string> allowed) {
    last().info.allowed = std::move(allowed);
    if (last().info.type == "string") last().info.type = "enum";
    return *this;
  }

  const std::vector<ParameterInfo> info() const {
    std::vector<ParameterInfo> out;
    for (const auto& e : entries_) out.push_back(e.info);
    return out;
  }
  // {name: value} of every parameter; of a default-constructed struct, the defaults.
  nlohmann::json to_json(const Options& options = Options{}) const {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& e : entries_) out[e.info.name] = e.get(options);
    return out;
  }
  // The struct from `args` (missing keys keep their defaults), checked. `where` prefixes keys
  // in errors ("early_stopping" -> "early_stopping.patience must be >= 0, got -1").
  Options from_json(const nlohmann::json& args, const std::string& where) const {
    Options options;
    if (!args.is_object() && !args.is_null())
      throw ParameterError(fmt::format("{}: expected a mapping of {}, got {}", where, names(), args.dump()));
    if (args.is_object())
      for (const auto& [key, value] : args.items()) {
        const Entry* e = find(key);
        if (!e) throw ParameterError(fmt::format("{}: unknown key '{}' (allowed: {})", where, key, names()));
        try {
          e->set(options, value);
        } catch (const ParameterError& error) {
          throw ParameterError(fmt::format("{}.{}: {}", where, key, error.what()));
        }
      }
    check(options, where);
    return options;
  }
  // Bounds and allowed values of every parameter.
  void check(const Options& options, const std::string& where) const {
    for (const auto& e : entries_) {
      std::string key = where.empty() ? e.info.name : where + "." + e.info.name;
      if (auto v = e.number(options)) {
        if (e.info.minimum && *v < *e.info.minimum)
          throw ParameterError(fmt::format("{} must be >= {}, got {}", key, detail::bound_text(*e.info.minimum), *v));
        if (e.info.maximum && *v > *e.info.maximum)
          throw ParameterError(fmt::format("{} must be <= {}, got {}", key, detail::bound_text(*e.info.maximum), *v));
      }
      if (const std::string* text = e.text(options); text && !e.info.allowed.empty()) {
        bool ok = false;
        for (const auto& a : e.info.allowed) ok = ok || a == *text;
        if (!ok)
          throw ParameterError(
              fmt::format("{}: '{}' is not allowed (allowed: {})", key, *text, fmt::join(e.info.allowed, ", ")));
      }
    }
  }

 private:
  Entry& last() {
    if (entries_.empty()) throw std::logic_error("Parameters: a bound before any parameter");
    return entries_.back();
  }
  const Entry* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.info.name == name) return &e;
    return nullptr;
  }
  std::string names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.info.name);
    return fmt::format("{}", fmt::join(out, ", "));
  }
  std::vector<Entry> entries_;
};

}  // namespace j2v
