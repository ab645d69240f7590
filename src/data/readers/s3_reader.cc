#include "data/readers/s3_reader.h"

#include <stdlib.h>

#include <filesystem>

#include "base/errors.h"
#include "io/s3/s3_client.h"

namespace j2v {

S3Reader::S3Reader(const std::string& url, ReaderOptions options) {
  io::S3Location location = io::parse_s3_url(url);
  io::S3Client client(io::s3_settings_from_environment());
  std::string pattern = (std::filesystem::temp_directory_path() / "json2vec-s3-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw DataError("cannot make a temporary directory to download " + url);
  local_dir_ = pattern;
  // The object's own name, so the format is told from its suffix as for a local file.
  std::string name = std::filesystem::path(location.key).filename().string();
  std::string local = (std::filesystem::path(local_dir_) / (name.empty() ? "object" : name)).string();
  try {
    client.download(location.bucket, location.key, local);
    if (options.display_name.empty()) options.display_name = url;
    inner_ = open_record_reader(local, options);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(local_dir_, ec);
    throw;
  }
}

S3Reader::~S3Reader() {
  inner_.reset();
  std::error_code ec;
  std::filesystem::remove_all(local_dir_, ec);
}

}  // namespace j2v
