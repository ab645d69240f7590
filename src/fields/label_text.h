#pragma once
// How a JSON value reads as a label (categories, sets, entities): strings as they are,
// numbers as written in the record (3 -> "3", 2.50 -> "2.50"), booleans as true/false.
#include <fmt/format.h>

#include <cctype>
#include <string_view>

#include "fields/field.h"

namespace j2v {

inline std::string_view label_text(const Scalar& v, const char* datatype) {
  switch (v.kind) {
    case Scalar::Kind::kString: return v.text;
    case Scalar::Kind::kNumber: {
      std::string_view t = v.text;
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
      return t;
    }
    case Scalar::Kind::kBool: return v.boolean ? "true" : "false";
    default:
      throw EncodeError(fmt::format("is {}, but the field is {}", v.kind_name(), datatype));
  }
}

}  // namespace j2v
