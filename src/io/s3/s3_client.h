#pragma once
// The few S3 calls json2vec needs, over libcurl with our own SigV4: list a prefix
// (ListObjectsV2, every page), read a byte range, download an object in ranged parts.
// Each request retries 5xx, 429, timeouts and dropped connections with exponential backoff
// and jitter; 4xx answers (no such key, access denied) fail at once with S3's own message.
#include <cstdint>
#include <string>
#include <vector>

#include "io/s3/s3_settings.h"

namespace j2v::io {

struct S3Location {
  std::string bucket, key;
};
bool is_s3_url(const std::string& path);
S3Location parse_s3_url(const std::string& url);  // s3://bucket/key; throws DataError

struct S3Object {
  std::string key;
  int64_t size = 0;
};

class S3Client {
 public:
  explicit S3Client(S3Settings settings);

  std::vector<S3Object> list(const std::string& bucket, const std::string& prefix) const;
  // Bytes [offset, offset + length) and the object's total size. With if_match (an ETag),
  // S3 refuses when the object has changed since; etag receives the object's ETag.
  std::string get_range(const std::string& bucket, const std::string& key, int64_t offset, int64_t length,
                        int64_t* total_size = nullptr, const std::string& if_match = "",
                        std::string* etag = nullptr) const;
  // The whole object into a local file, part by part, every part of the same version.
  void download(const std::string& bucket, const std::string& key, const std::string& path) const;

  const S3Settings& settings() const { return settings_; }

 private:
  struct Response {
    long status = 0;
    std::string body;
    std::string content_range;
    std::string etag;
  };
  Response send(const std::string& bucket, const std::string& key,
                const std::vector<std::pair<std::string, std::string>>& query, const std::string& range,
                const std::string& if_match) const;
  Response send_with_retries(const std::string& bucket, const std::string& key,
                             const std::vector<std::pair<std::string, std::string>>& query, const std::string& range,
                             const std::string& if_match = "") const;

  S3Settings settings_;
};

}  // namespace j2v::io
