#pragma once
// Errors every layer may raise. Each names what a user can fix: the file, line and field of
// a record, the key of a setting.
#include <stdexcept>
#include <string>

namespace j2v {

// A record or file the data layer cannot take; the message names file, line and field.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace j2v
