#pragma once
// Datatypes register here by name, with their options and defaults, so that a new
// datatype is one file plus one line in registry.cc.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fields/field.h"
#include "schema/schema.h"
#include "schema/schema_tree.h"

namespace j2v {

struct Datatype {
  std::string name;
  std::string help;
  nlohmann::json option_defaults;  // every allowed datatype-specific option, with its default
  std::function<void(const FieldSpec&)> validate;  // throws SchemaError
  std::function<std::shared_ptr<Field>(FieldSpec, Address)> make;
};

const Datatype& find_datatype(const std::string& name);  // throws SchemaError listing names
std::vector<std::string> datatype_names();

// Validates the schema (structure, then each field's datatype options and each branch's
// options), fills option defaults and builds the leaves depth-first in schema order; the
// branches they sit in go to `tree`.
std::vector<std::shared_ptr<Field>> build_fields(Schema& schema, SchemaTree* tree = nullptr);

}  // namespace j2v
