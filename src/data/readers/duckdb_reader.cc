#include "data/readers/duckdb_reader.h"

#include <cctype>
#include <string>

#include <string>
#include <vector>

#include "base/errors.h"
#include "io/duckdb_open.h"
#include "io/sql_quoting.h"
#include "base/available_cores.h"

namespace j2v {

namespace {

// The alias a row is referred to by: a column could be called `t`, not this.
constexpr const char* kRowAlias = "j2v_row__";

}  // namespace

std::string DuckDbReader::for_file(const std::string& path) {
  return for_query("SELECT * FROM " + io::duckdb_table_function(path));
}

std::string DuckDbReader::for_query(const std::string& sql) {
  std::string body = sql;
  while (!body.empty() && (body.back() == ';' || std::isspace(static_cast<unsigned char>(body.back())))) body.pop_back();
  // A newline before the closing parenthesis: the query may end in a -- comment.
  return std::string("SELECT CAST(to_json(") + kRowAlias + ") AS VARCHAR) FROM (" + body + "\n) AS " + kRowAlias;
}

std::string DuckDbReader::for_parquet_rows(const std::string& path, const std::string& condition) {
  // The filter runs before to_json, so the rows of other shards are never serialized.
  return "SELECT CAST(to_json(struct_pack(*COLUMNS(* EXCLUDE (file_row_number)))) AS VARCHAR), file_row_number "
         "FROM read_parquet(" + io::quote_string_literal(path) + ", file_row_number = true) WHERE " + condition;
}

int64_t DuckDbReader::parquet_row_count(const std::string& path) {
  // A footer read: the calling thread's DuckDB serves every count instead of one per file.
  ReaderOptions options;
  options.reuse_thread_duckdb = true;
  DuckDbReader reader("SELECT CAST(count(*) AS VARCHAR) FROM read_parquet(" + io::quote_string_literal(path) + ")", path,
                      options);
  auto rows = reader.next();
  return rows && rows->size() == 1 ? std::stoll(std::string(rows->record(0))) : -1;
}

namespace {

// A stream's worker reads file after file: starting a DuckDB for each one cost more than
// reading a small file, so each thread keeps one single-threaded DuckDB for its readers,
// used by one reader at a time.
struct ThreadDuckDb {
  duckdb_database database = nullptr;
  duckdb_connection connection = nullptr;
  ~ThreadDuckDb() {
    if (connection) duckdb_disconnect(&connection);
    if (database) duckdb_close(&database);
  }
};
thread_local std::unique_ptr<ThreadDuckDb> thread_duckdb;

}  // namespace

DuckDbReader::DuckDbReader(const std::string& query, std::string source, ReaderOptions options)
    : source_(std::move(source)), options_(options) {
  if (options_.reuse_thread_duckdb) {
    if (!thread_duckdb) {
      auto fresh = std::make_unique<ThreadDuckDb>();
      std::string error;
      if (io::open_duckdb(io::DuckDbSettings{}, &fresh->database, &error) == DuckDBError)
        throw DataError("cannot start DuckDB to read '" + source_ + "': " + error);
      if (duckdb_connect(fresh->database, &fresh->connection) == DuckDBError)
        throw DataError("cannot connect to DuckDB to read '" + source_ + "'");
      thread_duckdb = std::move(fresh);
    }
    borrowed_ = true;
    database_ = thread_duckdb->database;
    connection_ = thread_duckdb->connection;
  } else {
    std::string error;
    io::DuckDbSettings settings;
    settings.threads = options_.threads > 0 ? options_.threads : available_cores();
    if (io::open_duckdb(settings, &database_, &error) == DuckDBError)
      throw DataError("cannot start DuckDB to read '" + source_ + "': " + error);
    if (duckdb_connect(database_, &connection_) == DuckDBError) {
      connection_ = nullptr;
      close();
      throw DataError("cannot connect to DuckDB to read '" + source_ + "'");
    }
  }
  start(query);
}

void DuckDbReader::start(const std::string& query) {
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
  if (!borrowed_) {
    if (connection_) duckdb_disconnect(&connection_);
    if (database_) duckdb_close(&database_);
  }
  connection_ = nullptr;
  database_ = nullptr;
}


void DuckDbReader::fail(const std::string& what, const char* detail) {
  std::string message = what + " '" + source_ + "': " + io::one_line_duckdb_error(detail);
  close();
  throw DataError(message);
}

std::shared_ptr<RecordBuffer> DuckDbReader::next() {
  if (ended_) return nullptr;
  RecordBuffer::Builder rows;
  rows.reserve(options_.chunk_rows + 2048, (options_.chunk_rows + 2048) * 96);
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
    // A second column, when there is one, is the row's own 0-based number in its file.
    const int64_t* numbers = duckdb_data_chunk_get_column_count(chunk) > 1
                                 ? static_cast<const int64_t*>(duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 1)))
                                 : nullptr;
    for (idx_t i = 0; i < n; ++i) {
      std::string_view json(duckdb_string_t_data(&strings[i]), duckdb_string_t_length(strings[i]));
      int64_t row = numbers ? numbers[i] + 1 : next_row_;
      rows.add(json, source_, row);
      next_row_ = row + 1;
    }
    duckdb_destroy_data_chunk(&chunk);
  }
  if (rows.size() == 0) return nullptr;
  return rows.finish();
}

}  // namespace j2v
