#pragma once
// Runs SQL in a throwaway DuckDB, for tests that make Parquet/CSV files or damage them.
#include <gtest/gtest.h>

#include <string>

#include "duckdb.h"

namespace j2v::testing {

inline void duckdb_exec(const std::string& sql) {
  duckdb_database db = nullptr;
  duckdb_connection con = nullptr;
  ASSERT_EQ(duckdb_open(nullptr, &db), DuckDBSuccess);
  ASSERT_EQ(duckdb_connect(db, &con), DuckDBSuccess);
  duckdb_result result;
  duckdb_state state = duckdb_query(con, sql.c_str(), &result);
  std::string error = state == DuckDBError ? duckdb_result_error(&result) : "";
  duckdb_destroy_result(&result);
  duckdb_disconnect(&con);
  duckdb_close(&db);
  ASSERT_EQ(state, DuckDBSuccess) << sql << ": " << error;
}

}  // namespace j2v::testing
