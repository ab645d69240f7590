#pragma once
// A registry of components by name (after XGBoost's registries): models, data modules,
// callbacks, loggers, optimizers and schedulers register a factory with the defaults of
// every init argument, so a config names a component by class path and its arguments are
// checked (unknown keys, wrong types) and completed before anything is built.
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace j2v::engine {

template <typename Product, typename... Context>
class Registry {
 public:
  using Factory = std::function<Product(const nlohmann::json& init_args, Context...)>;
  struct Entry {
    std::string name;
    std::string help;
    nlohmann::json defaults = nlohmann::json::object();  // every init argument; null = required or linked
    Factory make;
    std::vector<std::string> aliases = {};  // e.g. Lightning's or PyTorch's class paths
  };

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  // A later registration under the same name replaces the earlier one (a user's own wins).
  void add(Entry entry) {
    std::string name = entry.name;
    for (const auto& alias : entry.aliases) aliases_[alias] = name;
    entries_[name] = std::move(entry);
  }

  bool contains(const std::string& name) const { return entries_.count(canonical(name)) > 0; }

  const Entry& find(const std::string& name) const {
    auto it = entries_.find(canonical(name));
    if (it == entries_.end())
      throw std::invalid_argument(
          fmt::format("unknown {} class_path '{}' (registered: {})", kind_, name, fmt::join(names(), ", ")));
    return it->second;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, _] : entries_) out.push_back(name);
    return out;
  }

  // The init arguments with defaults filled in; unknown keys and values of the wrong type are
  // errors naming `where` (e.g. "trainer.callbacks[1].init_args").
  nlohmann::json complete(const std::string& name, const nlohmann::json& init_args, const std::string& where) const {
    const Entry& entry = find(name);
    nlohmann::json out = entry.defaults;
    if (init_args.is_null()) return out;
    if (!init_args.is_object())
      throw std::invalid_argument(fmt::format("{}: expected a mapping of {}'s arguments, got {}", where, entry.name,
                                              init_args.dump()));
    for (const auto& [key, value] : init_args.items()) {
      if (!entry.defaults.contains(key)) {
        std::vector<std::string> allowed;
        for (const auto& [k, _] : entry.defaults.items()) allowed.push_back(k);
        throw std::invalid_argument(fmt::format("unknown key '{}.{}' for {} (allowed: {})", where, key, entry.name,
                                                allowed.empty() ? "none" : fmt::format("{}", fmt::join(allowed, ", "))));
      }
      const nlohmann::json& def = entry.defaults[key];
      bool ok = def.is_null() || (def.is_boolean() && value.is_boolean()) ||
                (def.is_number_integer() && value.is_number_integer()) ||
                (def.is_number_float() && value.is_number()) || (def.is_string() && value.is_string()) ||
                (def.is_array() && value.is_array()) || (def.is_object() && value.is_object());
      if (!ok)
        throw std::invalid_argument(fmt::format("{}.{}: expected {} (like the default {}), got {}", where, key,
                                                type_of(def), def.dump(), value.dump()));
      out[key] = (def.is_number_float() && value.is_number_integer()) ? nlohmann::json(value.template get<double>())
                                                                       : value;
    }
    return out;
  }

  Product make(const std::string& name, const nlohmann::json& init_args, Context... context) const {
    return make_completed(name, complete(name, init_args, name), context...);
  }

  // Builds from init_args already completed; an argument of the wrong type for the factory
  // (one whose default is null accepts anything in the config) is named, not a bare JSON error.
  Product make_completed(const std::string& name, const nlohmann::json& init_args, Context... context) const {
    const Entry& entry = find(name);
    try {
      return entry.make(init_args, context...);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(fmt::format("{}: an init argument has the wrong type ({}); given: {}", entry.name,
                                              e.what(), init_args.dump()));
    }
  }

 private:
  static const char* type_of(const nlohmann::json& v) {
    if (v.is_boolean()) return "a boolean";
    if (v.is_number_integer()) return "an integer";
    if (v.is_number()) return "a number";
    if (v.is_string()) return "a string";
    if (v.is_array()) return "a list";
    return "a mapping";
  }
  std::string canonical(const std::string& name) const {
    auto it = aliases_.find(name);
    return it == aliases_.end() ? name : it->second;
  }
  std::string kind_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> aliases_;
};

}  // namespace j2v::engine
