#pragma once
// Records encoded by a set of fields, with each field's column found by name: what the
// encoder and datatype tests assert on.
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/encoded_table.h"
#include "fields/field.h"

namespace j2v::testing {

struct Encoded {
  std::vector<std::shared_ptr<Field>> fields;
  EncodedTable table;
  size_t index(const std::string& name) const {
    for (size_t f = 0; f < fields.size(); ++f)
      if (fields[f]->spec().name == name) return f;
    throw std::out_of_range("no field " + name);
  }
  Field& field(const std::string& name) const { return *fields[index(name)]; }
  const Column& column(const std::string& name) const { return table.columns[index(name)]; }
};

}  // namespace j2v::testing
