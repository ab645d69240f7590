// S3: SigV4 against AWS's published examples, retries and errors against a local fault
// server, and the whole path (listing, ranged reads, streaming) against s3rver, a local S3
// server (skipped unless `npm ci --prefix tests/io` has run).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "compress_util.h"
#include "base/errors.h"
#include "data/readers/record_reader.h"
#include "data/record_batch.h"
#include "data/streaming_data_module.h"
#include "io/s3/s3_client.h"
#include "io/s3/sigv4.h"
#include "model/model.h"
#include "test_util.h"

extern char** environ;

namespace j2v::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// --- SigV4: the examples of AWS's S3 documentation ("Signature Calculations for the
// Authorization Header") and of its SigV4 test suite.

const AwsCredentials kS3DocCredentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const char* kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string signature_of(const std::string& authorization) {
  return authorization.substr(authorization.find("Signature=") + 10);
}

TEST(SigV4, S3DocumentationGetObjectWithRange) {
  SignedRequest r;
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", kEmptySha},
               {"x-amz-date", "20130524T000000Z"}};
  r.payload_sha256 = kEmptySha;
  EXPECT_EQ(canonical_request(r),
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string auth = sigv4_authorization(r, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, S3DocumentationPutObject) {
  SignedRequest r;
  r.method = "PUT";
  r.path = "/" + uri_encode("test$file.text", true);
  std::string payload = "Welcome to Amazon S3.";
  r.payload_sha256 = sha256_hex(payload);
  EXPECT_EQ(r.payload_sha256, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-date", "20130524T000000Z"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
               {"x-amz-content-sha256", r.payload_sha256}};
  EXPECT_EQ(signature_of(sigv4_authorization(r, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z")),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4, S3DocumentationBucketQueriesSortTheirParameters) {
  SignedRequest lifecycle;
  lifecycle.query = {{"lifecycle", ""}};
  lifecycle.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                       {"x-amz-date", "20130524T000000Z"},
                       {"x-amz-content-sha256", kEmptySha}};
  lifecycle.payload_sha256 = kEmptySha;
  EXPECT_EQ(signature_of(sigv4_authorization(lifecycle, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z")),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  SignedRequest list = lifecycle;
  list.query = {{"prefix", "J"}, {"max-keys", "2"}};  // given out of order on purpose
  EXPECT_EQ(canonical_query(list.query), "max-keys=2&prefix=J");
  EXPECT_EQ(signature_of(sigv4_authorization(list, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z")),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, TestSuiteVanillaRequests) {
  const AwsCredentials suite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  SignedRequest vanilla;
  vanilla.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  vanilla.payload_sha256 = kEmptySha;
  EXPECT_EQ(sigv4_authorization(vanilla, suite, "us-east-1", "service", "20150830T123600Z"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  SignedRequest order = vanilla;
  order.query = {{"Param2", "value2"}, {"Param1", "value1"}};
  EXPECT_EQ(signature_of(sigv4_authorization(order, suite, "us-east-1", "service", "20150830T123600Z")),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4, UriEncodingKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(uri_encode("a b/c~d_e.f-g*h", false), "a%20b%2Fc~d_e.f-g%2Ah");
  EXPECT_EQ(uri_encode("dir/päth", true), "dir/p%C3%A4th");
}

// --- A fault-injecting S3 stand-in: serves objects with ranges, fails on demand.

class FaultServer {
 public:
  FaultServer() {
    server_.Get(R"(/bucket/(.*))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++requests_;
      authorizations_.push_back(req.get_header_value("Authorization"));
      // An error's XML goes out whole: cpp-httplib would otherwise cut it to the asked range.
      auto& unranged = const_cast<httplib::Request&>(req);
      auto ranges = unranged.ranges;
      unranged.ranges.clear();
      if (failures_left_ > 0) {
        --failures_left_;
        res.status = fail_status_;
        res.set_content("<Error><Code>" + fail_code_ + "</Code><Message>injected</Message></Error>", "application/xml");
        return;
      }
      auto it = objects_.find(std::string(req.matches[1]));
      if (it == objects_.end()) {
        res.status = 404;
        res.set_content("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
                        "application/xml");
        return;
      }
      std::string etag = "\"v" + std::to_string(versions_[it->first]) + "\"";
      if (req.has_header("If-Match") && req.get_header_value("If-Match") != etag) {
        res.status = 412;
        res.set_content("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you "
                        "specified did not hold</Message></Error>", "application/xml");
        return;
      }
      unranged.ranges = ranges;
      // cpp-httplib answers the Range header itself (206, Content-Range) from the whole body.
      ranges_.push_back(req.get_header_value("Range"));
      res.set_header("ETag", etag);
      res.set_content(it->second, "application/octet-stream");
      if (replace_after_ > 0 && --replace_after_ == 0) {  // a writer replaces the object mid-download
        it->second = std::string(it->second.size(), 'x');
        ++versions_[it->first];
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FaultServer() {
    server_.stop();
    thread_.join();
  }
  void put(const std::string& key, std::string body) { objects_[key] = std::move(body); }
  void replace_after(int requests) { replace_after_ = requests; }
  void fail_next(int n, int status, std::string code) {
    std::lock_guard<std::mutex> lock(mutex_);
    failures_left_ = n;
    fail_status_ = status;
    fail_code_ = std::move(code);
  }
  int requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  std::vector<std::string> ranges() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ranges_;
  }
  std::vector<std::string> authorizations() {
    std::lock_guard<std::mutex> lock(mutex_);
    return authorizations_;
  }
  S3Settings settings() const {
    S3Settings s;
    s.credentials = {"AKIDTEST", "secret", ""};
    s.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    s.backoff_seconds = 0.001;
    s.max_attempts = 5;
    s.part_bytes = 1000;
    return s;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::map<std::string, std::string> objects_;
  std::map<std::string, int> versions_;
  int replace_after_ = 0;
  int requests_ = 0, failures_left_ = 0, fail_status_ = 503;
  std::string fail_code_ = "SlowDown";
  std::vector<std::string> ranges_, authorizations_;
};

std::string sample_object(size_t n) {
  std::string body;
  for (size_t i = 0; body.size() < n; ++i) body += json{{"id", i}}.dump() + "\n";
  return body;
}

TEST(S3Client, DownloadsInSignedRangedPartsAndSurvivesA503Storm) {
  FaultServer server;
  std::string body = sample_object(4500);
  server.put("data/a.jsonl", body);
  S3Client client(server.settings());
  auto dir = testing::temp_dir("s3_parts");
  std::string local = (dir / "a.jsonl").string();
  server.fail_next(3, 503, "SlowDown");  // the first part fails three times, then succeeds
  client.download("bucket", "data/a.jsonl", local);
  EXPECT_EQ(testing::read_bytes(local), body);
  auto ranges = server.ranges();
  ASSERT_EQ(ranges.size(), 5u);  // 4,500 bytes in parts of 1,000
  EXPECT_EQ(ranges[0], "bytes=0-999");
  EXPECT_EQ(ranges[4], "bytes=4000-4999");
  EXPECT_EQ(server.requests(), 3 + 5);
  for (const auto& auth : server.authorizations())
    EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AKIDTEST/", 0), 0u) << auth;

  // The object is replaced after its first part: the next parts name the first part's ETag,
  // so the download fails instead of splicing two versions.
  server.replace_after(1);
  try {
    client.download("bucket", "data/a.jsonl", local);
    FAIL() << "a download mixed two versions of an object";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 412 (PreconditionFailed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("changed while it was being read"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(local));  // no partial file left behind
  fs::remove_all(dir);
}

TEST(S3Client, GivesUpWithAClearErrorAndNeverRetriesA4xx) {
  FaultServer server;
  server.put("k.jsonl", sample_object(100));
  S3Client client(server.settings());
  server.fail_next(100, 503, "SlowDown");
  try {
    client.get_range("bucket", "k.jsonl", 0, 10);
    FAIL() << "a 503 storm was not reported";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("s3://bucket/k.jsonl: HTTP 503 (SlowDown: injected) after 5 attempts"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(server.requests(), 5);
  server.fail_next(1, 403, "AccessDenied");
  try {
    client.get_range("bucket", "k.jsonl", 0, 10);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 403 (AccessDenied: injected): check the credentials"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(server.requests(), 6);  // one request: a 4xx is not retried
  try {
    client.get_range("bucket", "missing.jsonl", 0, 10);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("NoSuchKey"), std::string::npos) << e.what();
  }
  S3Settings unreachable = server.settings();
  unreachable.endpoint = "http://127.0.0.1:1";  // nothing listens: a network error, retried
  unreachable.max_attempts = 2;
  try {
    S3Client(unreachable).get_range("bucket", "k.jsonl", 0, 10);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("after 2 attempts"), std::string::npos) << e.what();
  }
}

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  void set(const char* name, const std::string& value) {
    remember(name);
    setenv(name, value.c_str(), 1);
  }
  void unset(const char* name) {
    remember(name);
    unsetenv(name);
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) setenv(name.c_str(), value->c_str(), 1);
      else unsetenv(name.c_str());
    }
  }

 private:
  void remember(const char* name) {
    if (saved_.count(name)) return;
    const char* v = std::getenv(name);
    saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST(S3Settings, EnvironmentThenProfileFileAndAClearErrorWithoutCredentials) {
  auto dir = testing::temp_dir("s3_settings");
  ScopedEnv env;
  for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                           "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"})
    env.unset(name);
  env.set("AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string());
  env.set("AWS_CONFIG_FILE", (dir / "config").string());
  try {
    s3_settings_from_environment();
    FAIL() << "no credentials and no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), std::string::npos) << e.what();
  }
  testing::write_lines(dir / "credentials", {"[default]", "aws_access_key_id = AKIDDEFAULT",
                                             "aws_secret_access_key = s1", "", "[work]", "aws_access_key_id=AKIDWORK",
                                             "aws_secret_access_key=s2", "aws_session_token=tok"});
  testing::write_lines(dir / "config", {"[profile work]", "region = eu-west-3"});
  EXPECT_EQ(s3_settings_from_environment().credentials.access_key_id, "AKIDDEFAULT");
  env.set("AWS_PROFILE", "work");
  S3Settings work = s3_settings_from_environment();
  EXPECT_EQ(work.credentials.access_key_id, "AKIDWORK");
  EXPECT_EQ(work.credentials.session_token, "tok");
  EXPECT_EQ(work.region, "eu-west-3");
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", "s3");
  env.set("AWS_REGION", "ap-south-1");
  env.set("AWS_ENDPOINT_URL", "http://localhost:9000/");
  S3Settings from_env = s3_settings_from_environment();
  EXPECT_EQ(from_env.credentials.access_key_id, "AKIDENV");
  EXPECT_EQ(from_env.region, "ap-south-1");
  EXPECT_EQ(from_env.endpoint, "http://localhost:9000");
  fs::remove_all(dir);
}

// --- s3rver: a second, independent S3 implementation (listing pages, ranges, objects).

class S3rver {
 public:
  static fs::path script() { return testing::source_path("tests/io/node_modules/s3rver/bin/s3rver.js"); }
  // Node must also offer DES (s3rver's continuation tokens) through OpenSSL's legacy provider.
  static bool available() {
    return fs::exists(script()) &&
           std::system("node --openssl-legacy-provider -e \"require('crypto').createCipheriv('des', "
                       "Buffer.alloc(8), Buffer.alloc(8))\" > /dev/null 2>&1") == 0;
  }

  S3rver() : dir_(testing::temp_dir("s3rver")) {
    // A port the kernel just found free; another process may still take it before node
    // listens (tests run in parallel), so a server that exits at once is started again.
    for (int attempt = 0; attempt < 5 && !started_; ++attempt) {
      port_ = free_port();
      if (port_ > 0) start();
    }
  }
  bool started() const { return started_; }
  ~S3rver() {
    if (pid_) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // s3rver's own account; it answers SignatureDoesNotMatch to a wrong signature.
  static AwsCredentials credentials() { return {"S3RVER", "S3RVER", ""}; }

  void put(const std::string& key, const std::string& body) {
    SignedRequest r;
    r.method = "PUT";
    r.path = "/data/" + uri_encode(key, true);
    r.payload_sha256 = sha256_hex(body);
    std::string date = "20261123T000000Z";
    std::time_t t = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buffer[32];
    std::strftime(buffer, sizeof(buffer), "%Y%m%dT%H%M%SZ", &utc);
    date = buffer;
    std::string host = "127.0.0.1:" + std::to_string(port_);
    r.headers = {{"host", host}, {"x-amz-content-sha256", r.payload_sha256}, {"x-amz-date", date}};
    httplib::Headers headers = {{"x-amz-content-sha256", r.payload_sha256},
                                {"x-amz-date", date},
                                {"Authorization", sigv4_authorization(r, credentials(), "us-east-1", "s3", date)}};
    httplib::Client client("127.0.0.1", port_);
    auto res = client.Put(r.path, headers, body, "application/octet-stream");
    ASSERT_TRUE(res) << "s3rver did not answer";
    ASSERT_EQ(res->status, 200) << res->body;
  }

 private:
  static int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
      port = ntohs(address.sin_port);
    close(fd);
    return port;
  }

  // Starts s3rver on port_ and waits until it answers; started_ stays false if it exits (the
  // port was taken, or node failed) or never answers.
  void start() {
    std::string port = std::to_string(port_);
    // s3rver's continuation tokens use DES, which Node's OpenSSL 3 keeps in its legacy provider.
    std::vector<std::string> args = {"node", "--openssl-legacy-provider", script().string(), "-d", dir_.string(), "-p", port, "-a", "127.0.0.1",
                                     "--silent", "--configure-bucket", "data"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, "node", &quiet, nullptr, argv.data(), environ) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&quiet);
    httplib::Client probe("127.0.0.1", port_);
    for (int i = 0; i < 100 && pid_; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return;
      }
      if (auto r = probe.Get("/")) {
        started_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  fs::path dir_;
  int port_ = 0;
  pid_t pid_ = 0;
  bool started_ = false;
};

#define SKIP_WITHOUT_S3RVER()                                                                     \
  if (!S3rver::available())                                                                       \
  GTEST_SKIP() << "s3rver not installed (npm ci --prefix tests/io), or Node lacks OpenSSL's legacy DES"

TEST(S3rverIntegration, ListsEveryPageReadsRangesAndRefusesAnUnknownKey) {
  SKIP_WITHOUT_S3RVER();
  S3rver s3;
  ASSERT_TRUE(s3.started()) << "s3rver did not start";
  for (int i = 0; i < 7; ++i) s3.put("logs/part-" + std::to_string(i) + ".jsonl", sample_object(100 + i));
  s3.put("other/x.jsonl", "{}\n");
  S3Settings settings;
  settings.credentials = S3rver::credentials();
  settings.endpoint = s3.endpoint();
  settings.list_page_size = 3;  // 7 objects: three pages
  S3Client client(settings);
  auto objects = client.list("data", "logs/");
  ASSERT_EQ(objects.size(), 7u);
  EXPECT_EQ(objects[6].key, "logs/part-6.jsonl");
  EXPECT_EQ(objects[6].size, static_cast<int64_t>(sample_object(106).size()));
  int64_t total = 0;
  EXPECT_EQ(client.get_range("data", "logs/part-0.jsonl", 3, 5, &total), sample_object(100).substr(3, 5));
  EXPECT_EQ(total, static_cast<int64_t>(sample_object(100).size()));

  // s3rver reads the Authorization header and checks the key id (it does not recompute a v4
  // signature: the AWS examples above check that).
  settings.credentials.access_key_id = "AKIDUNKNOWN";
  try {
    S3Client(settings).list("data", "logs/");
    FAIL() << "an unknown access key was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 403 (InvalidAccessKeyId: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("check the credentials"), std::string::npos) << e.what();
  }
}

TEST(S3rverIntegration, StreamsTrainingRecordsFromABucket) {
  SKIP_WITHOUT_S3RVER();
  S3rver s3;
  ASSERT_TRUE(s3.started()) << "s3rver did not start";
  int id = 0;
  for (int f = 0; f < 4; ++f) {
    std::string text;
    for (int i = 0; i < 150; ++i, ++id) text += json{{"id", id}, {"x", id % 10}, {"y", id % 3}}.dump() + "\n";
    // plain, gzip and zstd objects side by side
    std::string key = "events/train/part-" + std::to_string(f) + ".jsonl";
    if (f == 1) s3.put(key + ".gz", testing::gzip(text));
    else if (f == 2) s3.put(key + ".zst", testing::zstd(text));
    else s3.put(key, text);
  }
  ScopedEnv env;
  env.set("AWS_ACCESS_KEY_ID", "S3RVER");
  env.set("AWS_SECRET_ACCESS_KEY", "S3RVER");
  env.set("AWS_ENDPOINT_URL_S3", s3.endpoint());
  Model model = Model::from_schema(Schema::from_fields_json("record", json::parse(R"({
      "x": "number", "y": {"type": "category", "target": true}})")),
                                   ModelOptions().d_model(8).n_layers(1).n_heads(2));
  std::map<int, int> seen;
  for (int rank = 0; rank < 2; ++rank) {
    StreamingDataModule data(model.codec(), StreamingDataOptions()
                                        .batch_size(50)
                                        .root("s3://data/events")
                                        .train("/train/")
                                        .validate_fraction(0)
                                        .world_size(2)
                                        .rank(rank)
                                        .num_workers(2));
    data.setup(engine::Stage::kFit);
    auto loader = data.train_dataloader();
    loader->start_epoch(0);
    while (auto batch = loader->next()) {
      auto& records = engine::batch_as<RecordBatch>(*batch);
      for (int64_t i = 0; i < records.size(); ++i) ++seen[json::parse(records.record(i))["id"].get<int>()];
    }
  }
  ASSERT_EQ(seen.size(), 600u);
  for (const auto& [record, count] : seen) ASSERT_EQ(count, 1) << record;
  // Errors name the s3:// address, not the temporary copy.
  s3.put("events/bad/part-0.jsonl", "{\"x\": 1, \"y\": 1}\n{\"x\": [1, 2], \"y\": 2}\n");
  try {
    Model fresh = Model::from_schema(Schema::from_fields_json("record", json::parse(R"({
        "x": "number", "y": {"type": "category", "target": true}})")));
    StreamingDataModule bad_fit(fresh.codec(), StreamingDataOptions().root("s3://data/events").train("/bad/").validate_fraction(0));
    bad_fit.setup(engine::Stage::kFit);
    auto loader = bad_fit.train_dataloader();
    loader->start_epoch(0);
    while (loader->next()) {
    }
    FAIL() << "a bad record was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("s3://data/events/bad/part-0.jsonl:2: field 'record.x'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace j2v::io
