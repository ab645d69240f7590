#pragma once
// Writes prediction/embedding rows to Parquet or JSON Lines. A reader of the output must
// never see a half-written file: rows go to "<path>.tmp-<pid>" (plus, for Parquet, a spill
// directory "<path>.tmp-<pid>.spill"), and only close() moves the finished file to `path`
// (fsync, then rename). A crash therefore leaves temp files behind, never a partial `path`;
// the next writer of `path` removes them (when the process that left them is gone).
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace j2v::io {

// One output column. `duckdb_type` is a DuckDB type expression, used verbatim for Parquet:
// {"inputs", "VARCHAR"}, {"predictions", "STRUCT(\"record.fraud\" STRUCT(prob DOUBLE[]))"}.
// Supported: BOOLEAN, TINYINT..BIGINT, UTINYINT..UBIGINT, FLOAT, DOUBLE, VARCHAR, JSON and
// any nesting of LIST (T[]), fixed-size ARRAY (T[n]) and STRUCT of those. Parquet has no
// fixed-size list, so an ARRAY is stored as a LIST (write() still checks its length).
// Struct field names are stored verbatim, dots included: "record.fraud" stays one name.
struct ColumnType {
  std::string name;
  std::string duckdb_type;
};

class WriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Not thread-safe: one writer per thread.
class RowWriter {
 public:
  // Destroying a writer without close() is abort(): the file at `path` is never created.
  virtual ~RowWriter() = default;

  // `row` is a JSON object keyed by column name. A missing key or a JSON null is SQL NULL
  // (same for struct fields). A key that is not a column, or a value that does not fit its
  // column type (Parquet only: JSON Lines ignores types), throws WriteError naming the row
  // (1-based, in write order) and the column; the row is then not written and the writer
  // stays usable. Rows are buffered; JSON Lines may flush early when its buffer grows large.
  // A column's value may be a raw_json() (base/raw_json.h): its text is written as it is, for
  // a JSON column in Parquet and for any column in JSON Lines.
  virtual void write(const nlohmann::json& row) = 0;
  // Moves buffered rows out of this writer's memory (JSON Lines: into the temp file; Parquet:
  // to the encoder, which writes each row group to the temp file as soon as it is full).
  // Memory stays bounded whether or not flush() is called: Parquet hands rows over every
  // duckdb_vector_size() rows, JSON Lines writes past a few MB.
  virtual void flush() = 0;
  // Commits: writes the final file and atomically renames it to `path`. Calling it again
  // after success does nothing. On failure the temp files are removed and WriteError is thrown.
  virtual void close() = 0;
  // Discards everything written and removes the temp files. Safe to call at any time, twice.
  virtual void abort() = 0;
  // Rows accepted by write() so far, buffered ones included.
  virtual int64_t rows_written() const = 0;
};

// `format` is "parquet" or "jsonl". Creates the parent directory of `path` if missing.
// row_group_rows: rows per Parquet row group (0: DuckDB's default, 122,880), which is also how
// many rows the encoder holds before it writes them to the temp file.
// Throws WriteError for an unknown format, an empty or invalid column list, an unsupported
// column type or an unwritable location.
std::unique_ptr<RowWriter> make_row_writer(const std::string& path, const std::string& format,
                                           std::vector<ColumnType> columns, int64_t row_group_rows = 0);

}  // namespace j2v::io
