#include "schema/field_spec.h"

#include <algorithm>

#include "schema/query_path.h"
#include "schema/schema.h"

namespace j2v {

namespace {
const char* kCommonKeys[] = {"type", "query", "target", "embed", "nullable", "active",
                             "weight", "p_mask", "p_prune", "fields", "order"};

bool is_common_key(const std::string& key) {
  for (const char* k : kCommonKeys)
    if (key == k) return true;
  return false;
}

template <typename T>
T get_as(const std::string& field, const std::string& key, const nlohmann::json& v,
         const char* expected) {
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw SchemaError("field '" + field + "': option '" + key + "' expects " + expected +
                      ", got " + v.dump());
  }
}
}  // namespace

const std::vector<std::string>& FieldSpec::query_keys() const {
  static thread_local std::vector<std::string> fallback;
  if (!query.empty()) return query;
  fallback = {name};
  return fallback;
}

nlohmann::json FieldSpec::to_json() const {
  nlohmann::json j = options;
  j["type"] = type;
  if (!query.empty()) j["query"] = format_query_path(query);
  if (target) j["target"] = true;
  if (embed) j["embed"] = true;
  if (!nullable) j["nullable"] = false;
  if (!active) j["active"] = false;
  if (weight != 1.0) j["weight"] = weight;
  if (p_mask != 0.0) j["p_mask"] = p_mask;
  if (p_prune != 0.0) j["p_prune"] = p_prune;
  if (!children.empty()) {
    nlohmann::json kids = nlohmann::json::object();
    nlohmann::json order = nlohmann::json::array();
    for (const auto& c : children) {
      kids[c.name] = c.to_json();
      order.push_back(c.name);
    }
    j["fields"] = kids;
    j["order"] = order;  // as in Schema::to_json: token positions depend on child order
  }
  return j;
}

FieldSpec FieldSpec::from_json(const std::string& name, const nlohmann::json& value) {
  FieldSpec spec;
  spec.name = name;
  if (value.is_string()) {
    spec.type = value.get<std::string>();
    return spec;
  }
  if (!value.is_object())
    throw SchemaError("field '" + name +
                      "': expected a type name (e.g. 'number') or an options map, got " +
                      value.dump());
  if (!value.contains("type") || !value["type"].is_string())
    throw SchemaError("field '" + name + "': missing 'type' (e.g. {type: category})");
  spec.type = value["type"].get<std::string>();
  for (const auto& [key, v] : value.items()) {
    if (key == "type") continue;
    if (key == "query") {
      try {
        if (v.is_array()) {
          for (const auto& k : v) spec.query.push_back(get_as<std::string>(name, key, k, "strings"));
        } else {
          spec.query = parse_query_path(get_as<std::string>(name, key, v, "a string"));
        }
      } catch (const std::invalid_argument& e) {
        throw SchemaError("field '" + name + "': " + e.what());
      }
    } else if (key == "target") {
      spec.target = get_as<bool>(name, key, v, "true or false");
    } else if (key == "embed") {
      spec.embed = get_as<bool>(name, key, v, "true or false");
    } else if (key == "nullable") {
      spec.nullable = get_as<bool>(name, key, v, "true or false");
    } else if (key == "active") {
      spec.active = get_as<bool>(name, key, v, "true or false");
    } else if (key == "weight") {
      spec.weight = get_as<double>(name, key, v, "a number");
    } else if (key == "p_mask") {
      spec.p_mask = get_as<double>(name, key, v, "a number in [0, 1]");
    } else if (key == "p_prune") {
      spec.p_prune = get_as<double>(name, key, v, "a number in [0, 1]");
    } else if (key == "fields") {
      if (!v.is_object()) throw SchemaError("field '" + name + "': 'fields' must be a map");
      for (const auto& [child, cv] : v.items()) spec.children.push_back(from_json(child, cv));
    } else if (key == "order") {
      continue;  // applied below, once the children exist
    } else if (!is_common_key(key)) {
      spec.options[key] = v;
    }
  }
  if (value.contains("order") && value["order"].is_array() && value["order"].size() == spec.children.size()) {
    std::vector<FieldSpec> ordered;
    for (const auto& child : value["order"]) {
      auto it = std::find_if(spec.children.begin(), spec.children.end(),
                             [&](const FieldSpec& c) { return child.is_string() && c.name == child.get<std::string>(); });
      if (it == spec.children.end())
        throw SchemaError("field '" + name + "': 'order' names unknown field " + child.dump());
      ordered.push_back(*it);
    }
    spec.children = std::move(ordered);
  }
  return spec;
}

}  // namespace j2v
