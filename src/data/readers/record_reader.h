#pragma once
// Every input format behind one interface: a reader yields a file's records in file order,
// a chunk (a RecordBuffer of JSON records) at a time, so a stream never holds a whole file.
// JSON Lines go through simdjson (plain, gzip or zstd, told apart by content); Parquet, CSV
// and JSON files and SQL queries go through DuckDB, whose rows become JSON objects
// (STRUCT -> object, LIST -> array), so nested Parquet meets the schema's branches.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/file_format.h"
#include "data/record_buffer.h"

namespace j2v {

struct ReaderOptions {
  size_t chunk_bytes = size_t{8} << 20;  // JSON Lines: text per chunk
  // JSON Lines: the longest line read. A file that is not JSON Lines (a binary file,
  // /dev/zero) would otherwise be read into memory whole while looking for a line end.
  size_t max_record_bytes = size_t{256} << 20;
  size_t chunk_rows = 16384;             // DuckDB formats: rows per chunk
  int threads = 0;                       // DuckDB's own threads; 0 = all available cores
  std::string display_name;              // names the records in errors; empty: the path
  // Parquet only: an SQL condition on `file_row_number` (0-based) choosing the rows to read,
  // so a shard's rows are picked before they are turned into JSON. Rows keep their numbers.
  std::string parquet_row_filter;
  // DuckDB formats: borrow this thread's single-threaded DuckDB instead of starting one. For
  // a thread that reads one file at a time (a stream's worker): two readers open at once on
  // one thread must not both borrow it.
  bool reuse_thread_duckdb = false;
};

// A Parquet file's row count, from its footer (no data read); -1 for other files or s3://.
int64_t parquet_row_count(const std::string& path);

class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // The next records in file order; nullptr after the last. Throws DataError naming the
  // file (unreadable, truncated, corrupt) rather than ending early.
  virtual std::shared_ptr<RecordBuffer> next() = 0;
};

// A local path or an s3:// address (downloaded in ranged parts to a temporary file first:
// DuckDB has no S3 of its own here, and a local copy reads at disk speed).
std::unique_ptr<RecordReader> open_record_reader(const std::string& path, const ReaderOptions& options);
// The rows of a DuckDB query (`data.sql`), e.g. SELECT * FROM read_parquet('x/*.parquet').
std::unique_ptr<RecordReader> open_sql_reader(const std::string& sql, const ReaderOptions& options);

// Every record of a reader in one buffer (a table that fits in memory).
std::shared_ptr<RecordBuffer> read_all(std::unique_ptr<RecordReader> reader, const std::string& source);

}  // namespace j2v
