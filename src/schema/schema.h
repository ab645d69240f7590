#pragma once
// A record schema: the root node's name and its fields. Structural checks live here;
// datatype-specific option checks are done by the datatype (fields/registry).
#include <stdexcept>
#include <string>
#include <vector>

#include "schema/address.h"
#include "schema/field_spec.h"

namespace j2v {

class SchemaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Schema {
  std::string name = "record";
  std::vector<FieldSpec> fields;

  Address root() const { return Address(name); }
  // Throws SchemaError naming the offending field and option.
  void validate() const;
  bool has_targets() const;
  nlohmann::json to_json() const;   // {name, fields: {field: options}}
  static Schema from_json(const nlohmann::json& j);
  // `fields` as in the config file: a map from field name to a type string or options map.
  static Schema from_fields_json(const std::string& name, const nlohmann::json& fields);
};

}  // namespace j2v
