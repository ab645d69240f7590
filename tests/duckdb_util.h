#pragma once
// Runs SQL in a throwaway DuckDB, for tests that make Parquet/CSV files or damage them.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "duckdb.h"

namespace j2v::testing {

// Throws on failure, so a test stops before it reads a file that was never made.
inline void duckdb_exec(const std::string& sql) {
  duckdb_database db = nullptr;
  duckdb_connection con = nullptr;
  if (duckdb_open(nullptr, &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError)
    throw std::runtime_error("cannot start DuckDB");
  duckdb_result result;
  duckdb_state state = duckdb_query(con, sql.c_str(), &result);
  std::string error = state == DuckDBError ? duckdb_result_error(&result) : "";
  duckdb_destroy_result(&result);
  duckdb_disconnect(&con);
  duckdb_close(&db);
  if (state == DuckDBError) throw std::runtime_error(sql + ": " + error);
}

// A JSON Lines file as Parquet (row groups of row_group_size rows when > 0, to make several).
inline void jsonl_to_parquet(const std::string& from, const std::string& to, int row_group_size = 0) {
  std::string options = row_group_size > 0 ? ", ROW_GROUP_SIZE " + std::to_string(row_group_size) : "";
  duckdb_exec("COPY (SELECT * FROM read_json('" + from + "')) TO '" + to + "' (FORMAT parquet" + options + ")");
}

}  // namespace j2v::testing
