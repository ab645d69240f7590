#include "io/duckdb_types.h"

namespace j2v::io {

// ValueType's text form is SQL's, which DuckDB takes as it is.
std::string duckdb_type_of(const ValueType& type) { return type.str(); }

ColumnType column_of(const OutputColumn& column) { return {column.name, duckdb_type_of(column.type)}; }

}  // namespace j2v::io
