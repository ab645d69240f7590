#pragma once
// The file formats json2vec reads and writes, told apart by name. Readers (data), the
// converter and the writers (io) and the CLI all ask this one table.
#include <string>
#include <vector>

namespace j2v {

enum class FileFormat { kJsonLines, kParquet, kCsv, kJson };

// From the name, ignoring a trailing .gz or .zst: .jsonl/.ndjson -> JSON Lines, .parquet,
// .csv/.tsv, .json. Throws DataError naming the file and the suffixes it knows.
FileFormat format_of_path(const std::string& path);
// "jsonl", "parquet", ...: the values of data.streaming.suffix. Throws naming the allowed values.
FileFormat format_from_name(const std::string& name);
const std::vector<std::string>& format_names();
// True when path ends with one of the suffixes of format (plain, .gz or .zst).
bool has_format_suffix(const std::string& path, FileFormat format);

}  // namespace j2v
