#include "io/convert_file.h"

#include <cstdio>
#include <filesystem>

#include "base/atomic_file.h"
#include "base/errors.h"
#include "base/file_format.h"
#include "duckdb.h"
#include "base/available_cores.h"
#include "io/duckdb_open.h"
#include "io/row_writer.h"
#include "io/sql_quoting.h"

namespace j2v::io {

namespace {

std::string copy_options(const std::string& path) {
  switch (format_of_path(path)) {
    case FileFormat::kParquet: return "(FORMAT parquet)";
    case FileFormat::kCsv:
      return path.size() >= 4 && path.compare(path.size() - 4, 4, ".tsv") == 0 ? "(FORMAT csv, HEADER true, DELIMITER '\t')"
                                                                               : "(FORMAT csv, HEADER true)";
    case FileFormat::kJson: return "(FORMAT json, ARRAY true)";
    case FileFormat::kJsonLines: return "(FORMAT json)";
  }
  return "";
}

}  // namespace

int64_t convert_file(const std::string& input, const std::string& output) {
  if (!std::filesystem::exists(input)) throw DataError("cannot open '" + input + "': no such file");
  for (const char* compressed : {".gz", ".zst"}) {
    std::string suffix = compressed;
    if (output.size() > suffix.size() && output.compare(output.size() - suffix.size(), suffix.size(), suffix) == 0)
      throw DataError("convert writes uncompressed files: '" + output + "' ends in " + suffix +
                      " (Parquet compresses its columns itself)");
  }
  std::string temp = temp_path_for(output);
  std::string sql = "COPY (SELECT * FROM " + duckdb_table_function(input) + ") TO " + quote_string_literal(temp) + " " + copy_options(output);
  duckdb_database db = nullptr;
  duckdb_connection con = nullptr;
  std::string open_error;
  DuckDbSettings settings;
  settings.threads = available_cores();
  if (open_duckdb(settings, &db, &open_error) == DuckDBError)
    throw WriteError("cannot start DuckDB to write '" + output + "': " + open_error);
  if (duckdb_connect(db, &con) == DuckDBError) {
    duckdb_close(&db);
    throw WriteError("cannot connect to DuckDB to write '" + output + "'");
  }
  duckdb_result result;
  bool ok = duckdb_query(con, sql.c_str(), &result) == DuckDBSuccess;
  std::string error = ok ? "" : one_line_duckdb_error(duckdb_result_error(&result));
  int64_t rows = ok ? duckdb_value_int64(&result, 0, 0) : 0;
  duckdb_destroy_result(&result);
  duckdb_disconnect(&con);
  duckdb_close(&db);
  if (!ok) {
    remove_quietly(temp);
    throw DataError("cannot convert '" + input + "' to '" + output + "': " + error);
  }
  try {
    commit_file(temp, output);  // fsync, rename, fsync of the directory; removes `temp` on failure
  } catch (const AtomicFileError& e) {
    throw WriteError("cannot write '" + output + "': " + e.what());
  }
  return rows;
}

}  // namespace j2v::io
