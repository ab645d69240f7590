#include "io/duckdb_open.h"

#include "base/file_format.h"
#include "io/sql_quoting.h"

namespace j2v::io {

duckdb_state open_duckdb(const DuckDbSettings& settings, duckdb_database* database, std::string* error) {
  *database = nullptr;
  duckdb_config config;
  if (duckdb_create_config(&config) == DuckDBError) {
    *error = "cannot configure DuckDB";
    return DuckDBError;
  }
  std::string threads = std::to_string(settings.threads);
  bool configured = duckdb_set_config(config, "threads", threads.c_str()) == DuckDBSuccess &&
                    duckdb_set_config(config, "autoinstall_known_extensions", "false") == DuckDBSuccess &&
                    duckdb_set_config(config, "autoload_known_extensions", "false") == DuckDBSuccess;
  if (configured && !settings.memory_limit.empty())
    configured = duckdb_set_config(config, "memory_limit", settings.memory_limit.c_str()) == DuckDBSuccess;
  if (configured && !settings.temp_directory.empty())
    configured = duckdb_set_config(config, "temp_directory", settings.temp_directory.c_str()) == DuckDBSuccess;
  char* open_error = nullptr;
  duckdb_state opened = configured ? duckdb_open_ext(nullptr, database, config, &open_error) : DuckDBError;
  duckdb_destroy_config(&config);
  if (opened == DuckDBError) {
    *error = open_error ? open_error : "invalid configuration";
    if (open_error) duckdb_free(open_error);
    *database = nullptr;
  }
  return opened;
}

std::string duckdb_table_function(const std::string& path) {
  const char* function = "read_json";
  switch (format_of_path(path)) {
    case FileFormat::kParquet: function = "read_parquet"; break;
    case FileFormat::kCsv: function = "read_csv"; break;
    case FileFormat::kJson:
    case FileFormat::kJsonLines: function = "read_json"; break;
  }
  return std::string(function) + "(" + quote_string_literal(path) + ")";
}

}  // namespace j2v::io
