#pragma once
// The files of a streaming split: every file under a root with the chosen format's suffix
// whose path under the root (starting with '/') matches the split's regular expression
// (searched, not anchored: '/train/' selects a folder, '\.parquet$' a suffix). Sorted by
// path, so every rank and worker sees the same list in the same order.
#include <string>
#include <vector>

#include "data/readers/record_reader.h"

namespace j2v {

struct DiscoveredFile {
  std::string path;  // to open
  std::string key;   // under the root, from '/': what the split regex sees
};

// Every regular file under root (a directory, followed recursively, or an s3://bucket/prefix
// whose objects are listed), sorted by key. Throws DataError when root does not exist, is
// not a directory, or (S3) holds nothing.
std::vector<DiscoveredFile> list_files(const std::string& root);

// The files of one split. `what` names the config key in errors (an invalid regex, or one
// that selects nothing, which is an error: a typo must not train on nothing).
std::vector<DiscoveredFile> select_files(const std::vector<DiscoveredFile>& files, FileFormat format,
                                         const std::string& pattern, const std::string& what);

}  // namespace j2v
