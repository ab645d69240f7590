#include "data/readers/duckdb_reader.h"

#include <cctype>
#include <string>

#include "data/data_error.h"
#include "engine/available_cores.h"

namespace j2v {

namespace {

// The alias a row is referred to by: a column could be called `t`, not this.
constexpr const char* kRowAlias = "j2v_row__";

std::string sql_literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace

std::string DuckDbReader::for_file(const std::string& path, FileFormat format) {
  std::string function;
  switch (format) {
    case FileFormat::kParquet: function = "read_parquet"; break;
    case FileFormat::kCsv: function = "read_csv"; break;
    case FileFormat::kJson: function = "read_json"; break;
    case FileFormat::kJsonLines: function = "read_json"; break;
  }
  return for_query("SELECT * FROM " + function + "(" + sql_literal(path) + ")");
}

std::string DuckDbReader::for_query(const std::string& sql) {
  std::string body = sql;
  while (!body.empty() && (body.back() == ';' || std::isspace(static_cast<unsigned char>(body.back())))) body.pop_back();
  return std::string("SELECT CAST(to_json(") + kRowAlias + ") AS VARCHAR) FROM (" + body + ") AS " + kRowAlias;
}

DuckDbReader::DuckDbReader(const std::string& query, std::string source, ReaderOptions options)
    : source_(std::move(source)), options_(options) {
  duckdb_config config;
  if (duckdb_create_config(&config) == DuckDBError) throw DataError("cannot configure DuckDB to read '" + source_ + "'");
  std::string threads = std::to_string(options_.threads > 0 ? options_.threads : available_cores());
  bool configured = duckdb_set_config(config, "threads", threads.c_str()) == DuckDBSuccess &&
                    // json and parquet are built in; never reach for the network.
                    duckdb_set_config(config, "autoinstall_known_extensions", "false") == DuckDBSuccess &&
                    duckdb_set_config(config, "autoload_known_extensions", "false") == DuckDBSuccess;
  char* open_error = nullptr;
  duckdb_state opened = configured ? duckdb_open_ext(nullptr, &database_, config, &open_error) : DuckDBError;
  duckdb_destroy_config(&config);
  if (opened == DuckDBError) {
    std::string reason = open_error ? open_error : "invalid configuration";
    if (open_error) duckdb_free(open_error);
    database_ = nullptr;
    throw DataError("cannot start DuckDB to read '" + source_ + "': " + reason);
  }
  if (duckdb_connect(database_, &connection_) == DuckDBError) {
    connection_ = nullptr;
    close();
    throw DataError("cannot connect to DuckDB to read '" + source_ + "'");
  }
  if (duckdb_prepare(connection_, query.c_str(), &statement_) == DuckDBError)
    fail("cannot read", duckdb_prepare_error(statement_));
  // Streaming: rows are produced as they are fetched, so a file larger than memory is fine.
  if (duckdb_pending_prepared_streaming(statement_, &pending_) == DuckDBError)
    fail("cannot read", duckdb_pending_error(pending_));
  if (duckdb_execute_pending(pending_, &result_) == DuckDBError) {
    has_result_ = true;
    fail("cannot read", duckdb_result_error(&result_));
  }
  has_result_ = true;
}

DuckDbReader::~DuckDbReader() { close(); }

void DuckDbReader::close() {
  if (has_result_) duckdb_destroy_result(&result_);
  has_result_ = false;
  if (pending_) duckdb_destroy_pending(&pending_);
  if (statement_) duckdb_destroy_prepare(&statement_);
  if (connection_) duckdb_disconnect(&connection_);
  if (database_) duckdb_close(&database_);
}

void DuckDbReader::fail(const std::string& what, const char* detail) {
  std::string message = what + " '" + source_ + "': " + (detail && *detail ? detail : "unknown DuckDB error");
  close();
  throw DataError(message);
}

std::shared_ptr<RecordBuffer> DuckDbReader::next() {
  if (ended_) return nullptr;
  RecordBuffer::Builder rows;
  while (rows.size() < options_.chunk_rows) {
    duckdb_data_chunk chunk = duckdb_fetch_chunk(result_);
    if (!chunk) {
      const char* error = duckdb_result_error(&result_);
      if (error && *error) fail("cannot read", error);  // a corrupt file, never a quiet end
      ended_ = true;
      break;
    }
    idx_t n = duckdb_data_chunk_get_size(chunk);
    if (n == 0) {
      duckdb_destroy_data_chunk(&chunk);
      ended_ = true;
      break;
    }
    duckdb_vector column = duckdb_data_chunk_get_vector(chunk, 0);
    auto* strings = static_cast<duckdb_string_t*>(duckdb_vector_get_data(column));
    for (idx_t i = 0; i < n; ++i) {
      std::string_view json(duckdb_string_t_data(&strings[i]), duckdb_string_t_length(strings[i]));
      rows.add(json, source_, next_row_++);
    }
    duckdb_destroy_data_chunk(&chunk);
  }
  if (rows.size() == 0) return nullptr;
  return rows.finish();
}

}  // namespace j2v
