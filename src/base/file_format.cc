#include "base/file_format.h"

#include "base/errors.h"

namespace j2v {

namespace {

struct FormatSuffixes {
  FileFormat format;
  const char* name;
  std::vector<std::string> suffixes;
};

const std::vector<FormatSuffixes>& formats() {
  static const std::vector<FormatSuffixes> table = {
      {FileFormat::kJsonLines, "jsonl", {".jsonl", ".ndjson"}},
      {FileFormat::kParquet, "parquet", {".parquet"}},
      {FileFormat::kCsv, "csv", {".csv", ".tsv"}},
      {FileFormat::kJson, "json", {".json"}},
  };
  return table;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string without_compression(std::string path) {
  for (const char* c : {".gz", ".zst"})
    if (ends_with(path, c)) return path.substr(0, path.size() - std::char_traits<char>::length(c));
  return path;
}

}  // namespace

const std::vector<std::string>& format_names() {
  static const std::vector<std::string> names = {"jsonl", "ndjson", "parquet", "csv", "json"};
  return names;
}

FileFormat format_from_name(const std::string& name) {
  if (name == "ndjson") return FileFormat::kJsonLines;
  for (const auto& f : formats())
    if (name == f.name) return f.format;
  std::string allowed;
  for (const auto& n : format_names()) allowed += (allowed.empty() ? "" : ", ") + n;
  throw DataError("unknown format '" + name + "'; allowed: " + allowed);
}

bool has_format_suffix(const std::string& path, FileFormat format) {
  std::string bare = without_compression(path);
  for (const auto& f : formats())
    if (f.format == format)
      for (const auto& suffix : f.suffixes)
        if (ends_with(bare, suffix)) return true;
  return false;
}

FileFormat format_of_path(const std::string& path) {
  for (const auto& f : formats())
    if (has_format_suffix(path, f.format)) return f.format;
  throw DataError("'" + path +
                  "': cannot tell the format from the name; expected .jsonl, .ndjson, .parquet, .csv, .tsv or "
                  ".json (JSON Lines and CSV may end in .gz or .zst)");
}

}  // namespace j2v
