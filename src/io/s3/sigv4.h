#pragma once
// AWS Signature Version 4 for one HTTP request, written out so it can be checked against
// AWS's published examples (tests/io/s3_test.cc): canonical request, string to sign,
// derived key, Authorization header.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace j2v::io {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only; sent as x-amz-security-token
};

struct SignedRequest {
  std::string method = "GET";
  std::string path = "/";  // already URI-encoded, as sent (S3 does not encode it twice)
  std::vector<std::pair<std::string, std::string>> query;    // raw names and values
  std::vector<std::pair<std::string, std::string>> headers;  // must include host and x-amz-date
  std::string payload_sha256;                                // hex; UNSIGNED-PAYLOAD is allowed
};

std::string sha256_hex(std::string_view data);
// RFC 3986 unreserved characters stay, everything else is %XX (uppercase); '/' too unless
// keep_slash (object keys in paths).
std::string uri_encode(std::string_view text, bool keep_slash);
// "a=1&b=2", names and values encoded and sorted by name, then value: the canonical query,
// which is also what the request must send.
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);

std::string canonical_request(const SignedRequest& request);
std::string string_to_sign(const SignedRequest& request, const std::string& amz_date, const std::string& scope);
// The Authorization header's value. amz_date is "YYYYMMDDTHHMMSSZ", the request's x-amz-date.
std::string sigv4_authorization(const SignedRequest& request, const AwsCredentials& credentials,
                                const std::string& region, const std::string& service, const std::string& amz_date);

}  // namespace j2v::io
