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
  // Options added after checkpoints were first saved, each with the value that reproduces how
  // a field saved without it was trained (number: `embedding: periodic`, the only one there was).
  nlohmann::json options_before_they_existed = nlohmann::json::object();
};

// A datatype whose Field subclass is made from (spec, address): what each datatype's file returns.
template <typename FieldType>
Datatype datatype_of(std::string name, std::string help, nlohmann::json option_defaults,
                     std::function<void(const FieldSpec&)> validate,
                     nlohmann::json options_before_they_existed = nlohmann::json::object()) {
  return {std::move(name), std::move(help), std::move(option_defaults), std::move(validate),
          [](FieldSpec spec, Address address) -> std::shared_ptr<Field> {
            return std::make_shared<FieldType>(std::move(spec), std::move(address));
          },
          std::move(options_before_they_existed)};
}

const Datatype& find_datatype(const std::string& name);  // throws SchemaError listing names
std::vector<std::string> datatype_names();

// Validates the schema (structure, then each field's datatype options and each branch's
// options), fills option defaults and builds the leaves depth-first in schema order; the
// branches they sit in go to `tree`.
std::vector<std::shared_ptr<Field>> build_fields(Schema& schema, SchemaTree* tree = nullptr);

// A schema read from a checkpoint: gives each field the options its datatype added since,
// with the values it was trained under, before defaults (today's) would fill them in.
void add_options_saved_before_they_existed(Schema& saved);

}  // namespace j2v
