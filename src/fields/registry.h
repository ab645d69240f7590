#pragma once
// Datatypes register here by name, with their options and defaults. A new datatype is its
// own file (src/fields/NAME.cc, defining NAME_datatype()) plus two lines in registry.cc (the
// declaration and its place in the list); configs reach it by name at once, and C++ programs
// get a builder class beside Number and Category in schema/field_spec.h if it should have one.
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

// A datatype whose Field subclass is made from (spec, address): what each datatype's file returns.
template <typename FieldType>
Datatype datatype_of(std::string name, std::string help, nlohmann::json option_defaults,
                     std::function<void(const FieldSpec&)> validate) {
  return {std::move(name), std::move(help), std::move(option_defaults), std::move(validate),
          [](FieldSpec spec, Address address) -> std::shared_ptr<Field> {
            return std::make_shared<FieldType>(std::move(spec), std::move(address));
          }};
}

const Datatype& find_datatype(const std::string& name);  // throws SchemaError listing names
std::vector<std::string> datatype_names();

// Validates the schema (structure, then each field's datatype options and each branch's
// options), fills option defaults and builds the leaves depth-first in schema order; the
// branches they sit in go to `tree`.
std::vector<std::shared_ptr<Field>> build_fields(Schema& schema, SchemaTree* tree = nullptr);

}  // namespace j2v
