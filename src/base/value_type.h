#pragma once
// The type of a value in a row of output (a prediction, an embedding): what a Module says it
// produces, independent of any file format. Writers map it to their own types (io maps it to
// DuckDB's for Parquet); JSON Lines needs none.
#include <string>
#include <utility>
#include <vector>

namespace j2v {

class ValueType {
 public:
  enum class Kind { kBoolean, kInt32, kInt64, kFloat32, kFloat64, kString, kJson, kList, kStruct };

  static ValueType boolean() { return ValueType(Kind::kBoolean); }
  static ValueType int32() { return ValueType(Kind::kInt32); }
  static ValueType int64() { return ValueType(Kind::kInt64); }
  static ValueType float32() { return ValueType(Kind::kFloat32); }
  static ValueType float64() { return ValueType(Kind::kFloat64); }
  static ValueType string() { return ValueType(Kind::kString); }
  // Any JSON value, kept as JSON text.
  static ValueType json() { return ValueType(Kind::kJson); }
  static ValueType list(ValueType element);
  // Named members, in order; names are kept verbatim (dots included).
  static ValueType structure(std::vector<std::pair<std::string, ValueType>> members);

  Kind kind() const { return kind_; }
  const ValueType& element() const;  // of a list
  const std::vector<std::pair<std::string, ValueType>>& members() const { return members_; }
  // SQL's spelling: BOOLEAN, INTEGER, BIGINT, FLOAT, DOUBLE, VARCHAR, JSON, T[] and
  // STRUCT("name" T, ...), which DuckDB (and so the Parquet writer) reads as it is.
  std::string str() const;
  bool operator==(const ValueType& other) const;
  bool operator!=(const ValueType& other) const { return !(*this == other); }

 private:
  explicit ValueType(Kind kind) : kind_(kind) {}
  Kind kind_;
  std::vector<ValueType> element_;  // one, for a list
  std::vector<std::pair<std::string, ValueType>> members_;
};

// One column of a Module's output rows.
struct OutputColumn {
  std::string name;
  ValueType type;
};

}  // namespace j2v
