#include "io/duckdb_open.h"

#include <fmt/format.h>
#include <zlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "base/errors.h"
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

namespace {
// The delimiter of a CSV file: tab for .tsv, otherwise the most frequent of , ; | and tab
// in its header line outside quotes (a comma when there is none).
char csv_delimiter(const std::string& path) {
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".tsv") == 0) return '\t';
  std::ifstream in(path, std::ios::binary);
  std::string header;
  char c;
  bool quoted = false;
  int counts[4] = {0, 0, 0, 0};
  const char candidates[4] = {',', ';', '|', '\t'};
  while (header.size() < (size_t{1} << 20) && in.get(c) && (quoted || c != '\n')) {
    header += c;
    if (c == '"') quoted = !quoted;
    for (int i = 0; i < 4 && !quoted; ++i) counts[i] += c == candidates[i];
  }
  int best = 0;
  for (int i = 1; i < 4; ++i)
    if (counts[i] > counts[best]) best = i;
  return counts[best] > 0 ? candidates[best] : ',';
}

// DuckDB reads JSON recursively: a value nested 100,000 levels deep crashes the process
// (a stack overflow), whatever maximum_depth says. Such a file is refused first, naming the
// line; gzip is read through, other files as they are.
void check_json_nesting(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) return;  // DuckDB reports what is wrong with it
  std::vector<char> buffer(size_t{1} << 20);
  int64_t line = 1;
  int depth = 0;
  bool in_string = false, escaped = false;
  int got;
  while ((got = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) {
    for (int i = 0; i < got; ++i) {
      char c = buffer[static_cast<size_t>(i)];
      if (c == '\n') ++line;
      if (in_string) {
        if (escaped) escaped = false;
        else if (c == '\\') escaped = true;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        if (++depth > kMaxJsonDepth) {
          gzclose(file);
          throw DataError(fmt::format("{}:{}: nested deeper than {} levels", path, line, kMaxJsonDepth));
        }
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
  }
  gzclose(file);
}
}  // namespace

// DuckDB's errors run over several lines: the problem, then the line it saw, then "Possible
// fixes" and the reader's settings, or the internal query with a caret under it. A user
// needs the first part, on one line, so it can be found in a log.
std::string one_line_duckdb_error(const char* detail) {
  if (!detail || !*detail) return "unknown DuckDB error";
  std::vector<std::string> kept;
  std::string text(detail);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? text.size() + 1 : end + 1;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.rfind("Possible fixes", 0) == 0 || line.rfind("Possible Solution", 0) == 0 || line.rfind("LINE ", 0) == 0 ||
        line.rfind("The search space used was", 0) == 0)
      break;
    if (line.find("not possible to automatically detect the CSV parsing dialect") != std::string::npos)
      line += " (rows of different widths, or an unterminated quote?)";
    if (!line.empty()) kept.push_back(line);
  }
  std::string out;
  for (const auto& line : kept) out += (out.empty() ? "" : "; ") + line;
  return out.size() > 400 ? out.substr(0, 397) + "..." : out;
}

std::string duckdb_table_function(const std::string& path) {
  const char* function = "read_json";
  switch (format_of_path(path)) {
    case FileFormat::kParquet: function = "read_parquet"; break;
    case FileFormat::kCsv: function = "read_csv"; break;
    case FileFormat::kJson:
    case FileFormat::kJsonLines: function = "read_json"; break;
  }
  std::string options;
  // CSV: DuckDB's sniffer picks whatever dialect makes every row the same width, so a file
  // with a short and a long row read as one column, or lost its header and rows to a skip
  // count, and an unterminated quote became part of a label. Here the header row is
  // required, the delimiter is the header's and the quote '"', and a row of another width
  // or an open quote is an error.
  if (format_of_path(path) == FileFormat::kCsv)
    options = fmt::format(", header = true, skip = 0, delim = {}, quote = '\"', escape = '\"', strict_mode = true, "
                          "null_padding = false",
                          quote_string_literal(std::string(1, csv_delimiter(path))));
  // JSON: values nested deeper than this stay JSON text instead of becoming types nested
  // as deep (which DuckDB builds and converts recursively: 100,000 levels crash it).
  if (std::string(function) == "read_json") {
    check_json_nesting(path);
    options = ", maximum_depth = 64";
  }
  return std::string(function) + "(" + quote_string_literal(path) + options + ")";
}

}  // namespace j2v::io
