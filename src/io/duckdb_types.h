#pragma once
// ValueType (what a Module says its output rows hold) as DuckDB type expressions, for the
// Parquet writer.
#include <string>

#include "base/value_type.h"
#include "io/row_writer.h"

namespace j2v::io {

// BOOLEAN, BIGINT, FLOAT, DOUBLE, VARCHAR, JSON, T[] and STRUCT("name" T, ...).
std::string duckdb_type_of(const ValueType& type);
ColumnType column_of(const OutputColumn& column);

}  // namespace j2v::io
