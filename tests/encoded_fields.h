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
  Field& field(const std::string& name) const {
    for (const auto& f : fields)
      if (f->spec().name == name) return *f;
    throw std::out_of_range("no field " + name);
  }
  const Column& column(const std::string& name) const {
    for (size_t f = 0; f < fields.size(); ++f)
      if (fields[f]->spec().name == name) return table.columns[f];
    throw std::out_of_range(name);
  }
};

}  // namespace j2v::testing
