#pragma once
// Starts an in-memory DuckDB the way every part of json2vec wants it: its own thread count
// and, when given, a memory limit and a spill directory; never installing or loading
// extensions from the network (json and parquet are built in).
#include <string>

#include "duckdb.h"

namespace j2v::io {

struct DuckDbSettings {
  int threads = 1;
  std::string memory_limit;      // e.g. "128MB"; empty: DuckDB's default
  std::string temp_directory;    // where it spills; empty: DuckDB's default
};

// DuckDBSuccess, or DuckDBError with the reason in *error (and *database left null).
duckdb_state open_duckdb(const DuckDbSettings& settings, duckdb_database* database, std::string* error);

// `read_parquet('path')`, `read_csv(...)` or `read_json(...)` for a file, by its suffix.
// JSON files are scanned first: nesting deeper than kMaxJsonDepth throws DataError naming the
// line (DuckDB would crash on it).
constexpr int kMaxJsonDepth = 1000;
std::string duckdb_table_function(const std::string& path);

// DuckDB's error text cut to what a user needs, on one line (no fixes list, no internal SQL).
std::string one_line_duckdb_error(const char* detail);

}  // namespace j2v::io
