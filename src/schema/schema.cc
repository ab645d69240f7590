#include "schema/schema.h"

#include <algorithm>
#include <set>

namespace j2v {

namespace {
void check_probability(const FieldSpec& f, const char* key, double v) {
  if (!(v >= 0.0 && v <= 1.0))
    throw SchemaError("field '" + f.name + "': option '" + key + "' must be in [0, 1], got " +
                      std::to_string(v));
}

void validate_node(const FieldSpec& f) {
  if (f.name.empty()) throw SchemaError("a field has an empty name");
  if (f.type.empty()) throw SchemaError("field '" + f.name + "': missing type");
  check_probability(f, "p_mask", f.p_mask);
  check_probability(f, "p_prune", f.p_prune);
  if (!(f.weight >= 0.0)) throw SchemaError("field '" + f.name + "': weight must be >= 0");
  for (const auto& k : f.query)
    if (k.empty() && f.query.size() == 1)
      throw SchemaError("field '" + f.name + "': query is empty");
}
}  // namespace

namespace {
void validate_level(const std::vector<FieldSpec>& fields, const std::string& parent, int& inputs, bool& learns) {
  std::set<std::string> seen;
  for (const auto& f : fields) {
    validate_node(f);
    if (!seen.insert(f.name).second)
      throw SchemaError("field '" + f.name + "' is declared twice" + (parent.empty() ? "" : " in branch '" + parent + "'"));
    if (f.is_branch()) {
      if (f.children.empty())
        throw SchemaError("branch '" + f.name + "' has no fields (add them under `fields:`)");
      if (f.target) throw SchemaError("branch '" + f.name + "': a branch cannot be a target; mark its fields instead");
      if (f.p_mask > 0 || f.p_prune > 0)
        throw SchemaError("branch '" + f.name + "': p_mask/p_prune are set on a branch's fields, not on the branch "
                          "(to hide whole items, use the branch option `mask`, e.g. {rate: 0.2})");
      if (!f.active) continue;
      // Hidden items are decoded; a mask that never fires (p: 0) teaches nothing.
      if (f.options.contains("mask") && f.options.at("mask").is_object() && f.options.at("mask").value("p", 1.0) > 0)
        learns = true;
      validate_level(f.children, f.name, inputs, learns);
      continue;
    }
    if (!f.children.empty())
      throw SchemaError("field '" + f.name + "' of type " + f.type + " has `fields`; only a branch has fields");
    if (f.active && !f.target) ++inputs;
    if (f.active && (f.target || f.p_mask > 0 || f.p_prune > 0)) learns = true;
  }
}

bool any_target(const std::vector<FieldSpec>& fields) {
  for (const auto& f : fields) {
    if (!f.active) continue;
    if (f.is_branch() ? any_target(f.children) : f.target) return true;
  }
  return false;
}
}  // namespace

void Schema::validate() const {
  if (name.empty()) throw SchemaError("model.name: the root name must not be empty");
  if (name.find('.') != std::string::npos)
    throw SchemaError("model.name: '" + name + "' must not contain '.'");
  if (fields.empty())
    throw SchemaError("model.fields: the schema has no fields (add at least one, e.g. "
                      "`price: number`)");
  int inputs = 0;
  bool learns = false;
  validate_level(fields, "", inputs, learns);
  if (inputs == 0)
    throw SchemaError("model.fields: every active field is a target; at least one input "
                      "field is needed");
  if (!learns)
    throw SchemaError("model.fields: nothing to learn: mark a field `target: true`, or set "
                      "p_mask/p_prune on fields or `mask` on a branch for self-supervised embeddings");
}

bool Schema::has_targets() const { return any_target(fields); }

nlohmann::json Schema::to_json() const {
  nlohmann::json fs = nlohmann::json::object();
  nlohmann::json order = nlohmann::json::array();
  for (const auto& f : fields) {
    fs[f.name] = f.to_json();
    order.push_back(f.name);
  }
  // JSON objects do not keep key order, but token positions (and so trained weights)
  // depend on field order: it is stored beside the map.
  return {{"name", name}, {"fields", fs}, {"order", order}};
}

Schema Schema::from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("fields"))
    throw SchemaError("schema: expected {name, fields}");
  Schema s = from_fields_json(j.value("name", std::string("record")), j.at("fields"));
  if (j.contains("order") && j["order"].is_array() && j["order"].size() == s.fields.size()) {
    std::vector<FieldSpec> ordered;
    for (const auto& name : j["order"]) {
      auto it = std::find_if(s.fields.begin(), s.fields.end(), [&](const FieldSpec& f) { return f.name == name; });
      if (it == s.fields.end()) throw SchemaError("schema: 'order' names unknown field " + name.dump());
      ordered.push_back(*it);
    }
    s.fields = std::move(ordered);
  }
  return s;
}

Schema Schema::from_fields_json(const std::string& name, const nlohmann::json& fields) {
  Schema s;
  s.name = name;
  if (fields.is_null()) return s;
  if (!fields.is_object())
    throw SchemaError("model.fields: expected a map from field name to type, got " +
                      fields.dump());
  for (const auto& [field, value] : fields.items()) s.fields.push_back(FieldSpec::from_json(field, value));
  return s;
}

}  // namespace j2v
