#include "io/s3/s3_client.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <stdexcept>
#include <thread>

#include "base/errors.h"

namespace j2v::io {

namespace {

const char* kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

size_t on_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// The response headers read: where each one goes.
struct HeaderTargets {
  std::string* content_range;
  std::string* etag;
};

size_t on_header(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
    while (!value.empty() && value.front() == ' ') value.erase(value.begin());
    auto* targets = static_cast<HeaderTargets*>(out);
    if (name == "content-range") *targets->content_range = value;
    if (name == "etag") *targets->etag = value;
  }
  return size * n;
}

std::string amz_now() {
  std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y%m%dT%H%M%SZ", &utc);
  return buffer;
}

std::string xml_unescape(std::string s) {
  static const std::pair<const char*, const char*> entities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&#39;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities) {
    std::string f = from;
    for (size_t at = s.find(f); at != std::string::npos; at = s.find(f, at + 1)) s.replace(at, f.size(), to);
  }
  return s;
}

// The text of each <tag>...</tag> in order (S3's XML has no nesting of the tags read here).
std::vector<std::string> xml_values(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  std::string open = "<" + tag + ">", close = "</" + tag + ">";
  for (size_t at = xml.find(open); at != std::string::npos; at = xml.find(open, at)) {
    size_t start = at + open.size(), end = xml.find(close, start);
    if (end == std::string::npos) break;
    out.push_back(xml_unescape(xml.substr(start, end - start)));
    at = end + close.size();
  }
  return out;
}

std::string s3_error_text(const std::string& body) {
  auto code = xml_values(body, "Code"), message = xml_values(body, "Message");
  if (code.empty()) return "";
  return code[0] + (message.empty() ? "" : ": " + message[0]);
}

bool retryable(long status) { return status == 429 || status >= 500; }

int64_t parse_size(const std::string& text, const std::string& where) {
  try {
    size_t used = 0;
    int64_t n = std::stoll(text, &used);
    if (used == text.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  throw DataError("s3://" + where + ": S3 sent a size that is not a number ('" + text + "')");
}

}  // namespace

bool is_s3_url(const std::string& path) { return path.rfind("s3://", 0) == 0; }

S3Location parse_s3_url(const std::string& url) {
  if (!is_s3_url(url)) throw DataError("'" + url + "' is not an s3:// address");
  std::string rest = url.substr(5);
  size_t slash = rest.find('/');
  S3Location loc{rest.substr(0, slash), slash == std::string::npos ? "" : rest.substr(slash + 1)};
  if (loc.bucket.empty()) throw DataError("'" + url + "' names no bucket (expected s3://BUCKET/KEY)");
  return loc;
}

S3Client::S3Client(S3Settings settings) : settings_(std::move(settings)) {
  static CurlGlobal global;
  (void)global;
}

S3Client::Response S3Client::send(const std::string& bucket, const std::string& key,
                                  const std::vector<std::pair<std::string, std::string>>& query,
                                  const std::string& range, const std::string& if_match) const {
  // Path-style for a custom endpoint (s3rver, MinIO, ...); virtual-hosted for AWS itself.
  std::string base, host, path;
  if (!settings_.endpoint.empty()) {
    base = settings_.endpoint;
    size_t scheme = base.find("://");
    host = base.substr(scheme == std::string::npos ? 0 : scheme + 3);
    path = "/" + uri_encode(bucket, false) + (key.empty() ? "" : "/" + uri_encode(key, true));
  } else {
    host = bucket + ".s3." + settings_.region + ".amazonaws.com";
    base = "https://" + host;
    path = "/" + uri_encode(key, true);
  }
  SignedRequest request;
  request.path = path;
  request.query = query;
  request.payload_sha256 = kEmptySha256;
  std::string date = amz_now();
  request.headers = {{"host", host}, {"x-amz-content-sha256", kEmptySha256}, {"x-amz-date", date}};
  if (!range.empty()) request.headers.emplace_back("range", range);
  if (!if_match.empty()) request.headers.emplace_back("if-match", if_match);
  if (!settings_.credentials.session_token.empty())
    request.headers.emplace_back("x-amz-security-token", settings_.credentials.session_token);
  std::string authorization = sigv4_authorization(request, settings_.credentials, settings_.region, "s3", date);

  std::string url = base + path;
  std::string query_text = canonical_query(query);
  if (!query_text.empty()) url += "?" + query_text;

  CURL* curl = curl_easy_init();
  if (!curl) throw DataError("cannot start an HTTP client for S3");
  struct curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers)
    if (name != "host") headers = curl_slist_append(headers, (name + ": " + value).c_str());
  headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
  Response response;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  HeaderTargets targets{&response.content_range, &response.etag};
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &targets);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, settings_.timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 20L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);  // the path as signed: no /./ or /../ folding
  CURLcode code = curl_easy_perform(curl);
  if (code == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK) {
    response.status = 0;  // no answer: a network failure, retried like a 5xx
    response.body = curl_easy_strerror(code);
  }
  return response;
}

S3Client::Response S3Client::send_with_retries(const std::string& bucket, const std::string& key,
                                               const std::vector<std::pair<std::string, std::string>>& query,
                                               const std::string& range, const std::string& if_match) const {
  std::mt19937_64 jitter(std::random_device{}());
  std::string what = "s3://" + bucket + "/" + key;
  double wait = settings_.backoff_seconds;
  for (int attempt = 1;; ++attempt) {
    Response r = send(bucket, key, query, range, if_match);
    // 416: a range from byte 0 of an empty object; the caller reads it as empty.
    if ((r.status >= 200 && r.status < 300) || (r.status == 416 && !range.empty())) return r;
    std::string detail = r.status == 0 ? r.body : "HTTP " + std::to_string(r.status);
    std::string s3_text = r.status ? s3_error_text(r.body) : "";
    if (!s3_text.empty()) detail += " (" + s3_text + ")";
    if (r.status != 0 && !retryable(r.status)) {
      std::string hint = r.status == 403   ? ": check the credentials and the region"
                         : r.status == 404 ? ": no such bucket or key"
                         : r.status == 412 ? ": the object changed while it was being read"
                                           : "";
      throw DataError("cannot read " + what + ": " + detail + hint);
    }
    if (attempt >= settings_.max_attempts)
      throw DataError("cannot read " + what + ": " + detail + " after " + std::to_string(attempt) + " attempts");
    std::uniform_real_distribution<double> spread(0.5, 1.0);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait * spread(jitter)));
    wait = std::min(wait * 2, 20.0);
  }
}

std::vector<S3Object> S3Client::list(const std::string& bucket, const std::string& prefix) const {
  std::vector<S3Object> objects;
  std::string token;
  do {
    std::vector<std::pair<std::string, std::string>> query = {
        {"list-type", "2"}, {"prefix", prefix}, {"max-keys", std::to_string(settings_.list_page_size)}};
    if (!token.empty()) query.emplace_back("continuation-token", token);
    Response r = send_with_retries(bucket, "", query, "");
    auto keys = xml_values(r.body, "Key"), sizes = xml_values(r.body, "Size");
    if (keys.size() != sizes.size())
      throw DataError("s3://" + bucket + "/" + prefix + ": cannot understand the listing S3 sent");
    for (size_t i = 0; i < keys.size(); ++i) objects.push_back({keys[i], parse_size(sizes[i], bucket)});
    auto truncated = xml_values(r.body, "IsTruncated");
    auto next = xml_values(r.body, "NextContinuationToken");
    bool more = !truncated.empty() && truncated[0] == "true";
    if (more && next.empty())
      throw DataError("s3://" + bucket + "/" + prefix + ": the listing is cut short and S3 sent no continuation token");
    token = more ? next[0] : "";
  } while (!token.empty());
  return objects;
}

std::string S3Client::get_range(const std::string& bucket, const std::string& key, int64_t offset, int64_t length,
                                int64_t* total_size, const std::string& if_match, std::string* etag) const {
  std::string range = "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  Response r = send_with_retries(bucket, key, {}, range, if_match);
  if (etag) *etag = r.etag;
  if (r.status == 416) {
    if (offset > 0) throw DataError("cannot read s3://" + bucket + "/" + key + ": the object is shorter than expected");
    if (total_size) *total_size = 0;
    return "";
  }
  if (total_size) {
    // "bytes 0-99/1234"; a server that ignores Range answers 200 with the whole object.
    size_t slash = r.content_range.rfind('/');
    if (r.status == 206 && slash == std::string::npos)
      throw DataError("cannot read s3://" + bucket + "/" + key + ": a partial answer without its Content-Range");
    *total_size = slash != std::string::npos ? parse_size(r.content_range.substr(slash + 1), bucket + "/" + key)
                                             : static_cast<int64_t>(r.body.size());
  }
  if (r.status == 200 && offset > 0) r.body = r.body.substr(std::min<size_t>(r.body.size(), offset), length);
  else if (r.status == 200) r.body.resize(std::min<size_t>(r.body.size(), length));
  return r.body;
}

void S3Client::download(const std::string& bucket, const std::string& key, const std::string& path) const {
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (!out) throw DataError("cannot create '" + path + "' to download s3://" + bucket + "/" + key);
  bool closed = false;
  try {
    int64_t total = -1, offset = 0;
    std::string etag;  // of the first part: later parts must come from the same version
    while (total < 0 || offset < total) {
      int64_t want = settings_.part_bytes;
      std::string part = get_range(bucket, key, offset, want, &total, etag, offset == 0 ? &etag : nullptr);
      if (part.empty() && offset < total)
        throw DataError("cannot read s3://" + bucket + "/" + key + ": the object ended at byte " +
                        std::to_string(offset) + " of " + std::to_string(total));
      if (std::fwrite(part.data(), 1, part.size(), out) != part.size())
        throw DataError("cannot write '" + path + "' (disk full?)");
      offset += static_cast<int64_t>(part.size());
      if (total == 0) break;
    }
    closed = true;
    if (std::fclose(out) != 0) throw DataError("cannot write '" + path + "'");
  } catch (...) {
    if (!closed) std::fclose(out);
    std::remove(path.c_str());
    throw;
  }
}

}  // namespace j2v::io
