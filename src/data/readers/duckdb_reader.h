#pragma once
// Parquet, CSV and JSON files, and SQL queries, read through DuckDB's C API as a stream:
// each row is turned into a JSON object by DuckDB itself (to_json), so a STRUCT column is a
// nested object and a LIST column an array, and the records then take the same path as
// JSON Lines. Rows are numbered from 1 in errors.
#include <string>

#include "data/readers/record_reader.h"
#include "duckdb.h"

namespace j2v {

class DuckDbReader : public RecordReader {
 public:
  // The query that reads one file (its format from its suffix).
  static std::string for_file(const std::string& path);
  // Wraps a user's query so each of its rows comes back as one JSON object.
  static std::string for_query(const std::string& sql);
  // The rows of a Parquet file that meet a condition on file_row_number, each with its number.
  static std::string for_parquet_rows(const std::string& path, const std::string& condition);
  static int64_t parquet_row_count(const std::string& path);

  // `source` names the records in errors (the file, or "data.sql").
  DuckDbReader(const std::string& query, std::string source, ReaderOptions options);
  ~DuckDbReader() override;
  DuckDbReader(const DuckDbReader&) = delete;
  DuckDbReader& operator=(const DuckDbReader&) = delete;

  std::shared_ptr<RecordBuffer> next() override;

 private:
  void start(const std::string& query);
  [[noreturn]] void fail(const std::string& what, const char* detail);
  void close();

  std::string source_;
  ReaderOptions options_;
  duckdb_database database_ = nullptr;    // owned unless borrowed_
  duckdb_connection connection_ = nullptr;
  bool borrowed_ = false;  // a single-threaded reader reuses its thread's DuckDB
  duckdb_prepared_statement statement_ = nullptr;
  duckdb_pending_result pending_ = nullptr;
  duckdb_result result_;
  bool has_result_ = false;
  bool ended_ = false;
  int64_t next_row_ = 1;
};

}  // namespace j2v
