#pragma once
// Copies records from one file format to another through DuckDB (e.g. JSON Lines to
// Parquet for a streaming root), nested values kept: the input is read as the readers read
// it, the output format follows the output's suffix (.parquet, .csv, .jsonl/.ndjson/.json).
#include <cstdint>
#include <string>

namespace j2v::io {

// Returns the number of records written. Writes to a temporary name and renames, so a
// failure never leaves a partial output. Throws WriteError or DataError naming the file.
int64_t convert_file(const std::string& input, const std::string& output);

}  // namespace j2v::io
