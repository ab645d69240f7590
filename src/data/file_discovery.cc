#include "data/file_discovery.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <system_error>

#include "base/errors.h"
#include "io/s3/s3_client.h"

namespace j2v {

namespace fs = std::filesystem;

namespace {

// Objects under s3://bucket/prefix/, listed page by page; "folders" are only key prefixes.
std::vector<DiscoveredFile> list_s3(const std::string& root) {
  io::S3Location location = io::parse_s3_url(root);
  std::string prefix = location.key;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  io::S3Client client(io::s3_settings_from_environment());
  std::vector<DiscoveredFile> files;
  for (const auto& object : client.list(location.bucket, prefix)) {
    if (object.key.empty() || object.key.back() == '/') continue;  // a console-made "folder"
    files.push_back({"s3://" + location.bucket + "/" + object.key, "/" + object.key.substr(prefix.size())});
  }
  if (files.empty()) throw DataError("data.streaming.root: no objects under '" + root + "'");
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return files;
}

}  // namespace

std::vector<DiscoveredFile> list_files(const std::string& root) {
  if (io::is_s3_url(root)) return list_s3(root);
  std::error_code ec;
  if (!fs::exists(root, ec)) throw DataError("data.streaming.root: '" + root + "' does not exist");
  if (!fs::is_directory(root, ec)) throw DataError("data.streaming.root: '" + root + "' is not a directory");
  std::vector<DiscoveredFile> files;
  fs::path base = fs::path(root).lexically_normal();
  auto options = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
  for (auto it = fs::recursive_directory_iterator(base, options, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code entry_error;  // a dangling link is skipped, not a failed listing
    if (!it->is_regular_file(entry_error)) continue;
    std::string key = "/" + it->path().lexically_relative(base).generic_string();
    files.push_back({it->path().string(), key});
  }
  if (ec) throw DataError("data.streaming.root: cannot list '" + root + "': " + ec.message());
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return files;
}

std::vector<DiscoveredFile> select_files(const std::vector<DiscoveredFile>& files, FileFormat format,
                                         const std::string& pattern, const std::string& what) {
  std::regex regex;
  try {
    regex = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw DataError(what + ": '" + pattern + "' is not a valid regular expression (" + e.what() + ")");
  }
  std::vector<DiscoveredFile> selected;
  size_t with_suffix = 0;
  for (const auto& f : files) {
    if (!has_format_suffix(f.key, format)) continue;
    ++with_suffix;
    if (std::regex_search(f.key, regex)) selected.push_back(f);
  }
  if (selected.empty())
    throw DataError(what + ": '" + pattern + "' matches none of the " + std::to_string(with_suffix) +
                    " files with the chosen suffix under the root (" + std::to_string(files.size()) +
                    " files in all); the pattern is searched in each file's path under the root, e.g. '/train/'");
  return selected;
}

}  // namespace j2v
