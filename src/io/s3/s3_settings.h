#pragma once
// Where S3 is and who we are, found the way the AWS CLI finds it: AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the profile (AWS_PROFILE, "default") in
// the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials); the region
// from AWS_REGION / AWS_DEFAULT_REGION or the config file (AWS_CONFIG_FILE, ~/.aws/config);
// an S3-compatible store from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (path-style requests).
#include <cstdint>
#include <string>

#include "io/s3/sigv4.h"

namespace j2v::io {

struct S3Settings {
  AwsCredentials credentials;
  std::string region = "us-east-1";
  std::string endpoint;      // empty: AWS, https://BUCKET.s3.REGION.amazonaws.com
  int max_attempts = 6;      // per request: 5xx, 429, timeouts and dropped connections retry
  double backoff_seconds = 0.25;  // first retry's wait, doubling (with jitter) up to 20 s
  int64_t part_bytes = int64_t{8} << 20;  // ranged GET size
  int list_page_size = 1000;  // keys per ListObjectsV2 page (S3's own maximum)
  long timeout_seconds = 120;
};

// Throws DataError saying what to set when no credentials are found.
S3Settings s3_settings_from_environment();

}  // namespace j2v::io
