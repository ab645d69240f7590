// Configuration layer of the json2vec CLI, in the style of LightningCLI: a
// YAML (or JSON) file of sections (model, data, optimizer, scheduler, trainer,
// checkpoint, early_stopping, writer) plus "--section.key=value" overrides,
// validated against one schema so that typos and type errors surface before
// any data is read or any model is built.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/model_options.h"

namespace j2v::cli {

struct KeySpec {
  std::string key;  // dotted, e.g. "trainer.max_epochs"
  // "int" | "float" | "bool" | "string" | "path?" (string or null) | "enum" |
  // "map" (free-form mapping) | "int_or_float"
  std::string type;
  nlohmann::json default_value;
  std::vector<std::string> allowed;  // for enum
  std::string help;
  // Inclusive numeric bounds; checked after type coercion. For int_or_float
  // the bounds apply to the int form, while the float form is a fraction and
  // must lie in [0, 1].
  std::optional<double> minimum = std::nullopt;
  std::optional<double> maximum = std::nullopt;
};

class ConfigError : public std::runtime_error {
  using runtime_error::runtime_error;
};

// Every known key, grouped by section in display order.
const std::vector<KeySpec>& config_keys();

// Loads the YAML (or JSON, chosen by a ".json" suffix) file if given, applies
// the overrides in order ("a.b=v", values parsed as YAML so flow mappings and
// null work; a leading "--" is tolerated), validates every key and type and
// fills defaults. Returns one object per section with every key present.
//
// Overrides may reach inside free-form maps ("model.fields.cut.max_vocab_size=8");
// a null there removes the entry. require_fields=false skips the check that
// model.fields is non-empty, for commands such as print-config that must work
// on a partial configuration.
//
// Components (model, data, optimizer, lr_scheduler, trainer.callbacks, trainer.logger) may be
// given by class_path and init_args (LightningCLI) or by _target_ (Lighter); with a catalog
// their init_args are checked against the registered defaults and completed.
struct ComponentCatalog {
  // kind: model | data | optimizer | lr_scheduler | callback | logger. Throws std::invalid_argument.
  std::function<nlohmann::json(const std::string& kind, const std::string& class_path, const nlohmann::json& init_args,
                               const std::string& where)>
      complete;
};
nlohmann::json resolve_config(const std::optional<std::string>& path, const std::vector<std::string>& overrides,
                              bool require_fields = true, const ComponentCatalog* catalog = nullptr);

// YAML text for print-config; resolve_config() of that text (as a file)
// yields the same configuration.
std::string to_yaml(const nlohmann::json& config);

// json2vec's model options from a resolved config: the model section's own keys, and the
// optimizer and scheduler sections unless components (class_path) replace them.
ModelOptions model_options(const nlohmann::json& config);

// Human-readable reference of every key: type, default, allowed values and
// help, grouped by section.
std::string config_help();

// Scalars are typed by the YAML 1.2 core schema (int, float, bool, null,
// string); quoted or !!str scalars stay strings. Duplicate keys are an error.
// Limits, each a ConfigError naming the line: nesting deeper than kMaxConfigDepth (a
// recursive alias is infinitely deep), more than kMaxConfigNodes values once aliases are
// expanded, and (files) more than kMaxConfigBytes.
constexpr int kMaxConfigDepth = 64;
constexpr size_t kMaxConfigNodes = 1'000'000;
constexpr size_t kMaxConfigBytes = size_t{16} << 20;
nlohmann::json yaml_to_json(const YAML::Node& node);
// YAML text to JSON, with the limits above (checked before yaml-cpp parses, where it must be).
nlohmann::json parse_yaml(const std::string& text);

}  // namespace j2v::cli
