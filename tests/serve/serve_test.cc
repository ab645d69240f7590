// Online serving: the batcher alone (deterministic, no model), then a Deployment of a tiny
// trained checkpoint driven over real HTTP, then `json2vec serve` as a process.
#include <gtest/gtest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <random>
#include <regex>
#include <thread>

#include "data/table_data_module.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/checkpoint_io.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "serve/batcher.h"
#include "serve/deployment.h"
#include "serve/metrics.h"
#include "test_util.h"

extern char** environ;

namespace j2v {
namespace {

using nlohmann::json;
using serve::Batcher;
using serve::BatcherOptions;
using serve::Deployment;
using serve::DeploymentOptions;
using namespace std::chrono_literals;

// ---- Batcher ----------------------------------------------------------------------------

// A RunBatch whose first call blocks until released, so a test can fill the queue while
// the worker is busy; it records every batch it runs.
struct Gate {
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  std::mutex mutex;
  std::vector<size_t> sizes;

  Batcher::RunBatch run() {
    return [this](int, const std::vector<std::string>& records) {
      if (first.exchange(false)) {
        entered.set_value();
        released.wait();
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        sizes.push_back(records.size());
      }
      json rows = json::array();
      for (const auto& r : records) {
        if (r == "bad") throw std::runtime_error("bad record");
        rows.push_back(r);
      }
      return rows;
    };
  }
};

BatcherOptions batcher_options(int64_t max_batch, std::chrono::microseconds timeout, int64_t max_queue = 1000) {
  BatcherOptions o;
  o.max_batch_size = max_batch;
  o.batch_timeout = timeout;
  o.max_queue_records = max_queue;
  o.workers = 1;
  return o;
}

TEST(Batcher, GroupsQueuedRequestsUpToMaxBatchSize) {
  Gate gate;
  Batcher batcher(batcher_options(4, 0us), gate.run());
  auto first = batcher.submit(batcher.arrive(), {"r0"});
  gate.entered.get_future().wait();  // the worker is busy with r0: the rest queue up
  std::vector<std::future<json>> rest;
  for (int i = 1; i <= 9; ++i) rest.push_back(batcher.submit(batcher.arrive(), {"r" + std::to_string(i)}));
  EXPECT_EQ(batcher.queued_records(), 9);
  gate.release.set_value();
  EXPECT_EQ(first.get(), json::array({"r0"}));
  for (int i = 1; i <= 9; ++i) EXPECT_EQ(rest[i - 1].get(), json::array({"r" + std::to_string(i)}));
  EXPECT_EQ(gate.sizes, (std::vector<size_t>{1, 4, 4, 1}));
}

TEST(Batcher, NeverSplitsARequestAndRunsAnOversizedOneAlone) {
  Gate gate;
  Batcher batcher(batcher_options(4, 0us), gate.run());
  auto first = batcher.submit(batcher.arrive(), {"a"});
  gate.entered.get_future().wait();
  auto three = batcher.submit(batcher.arrive(), {"b", "c", "d"});
  auto two = batcher.submit(batcher.arrive(), {"e", "f"});          // 3 + 2 > 4: next batch
  auto six = batcher.submit(batcher.arrive(), {"g", "h", "i", "j", "k", "l"});  // alone
  gate.release.set_value();
  first.get();
  EXPECT_EQ(three.get(), json::array({"b", "c", "d"}));
  EXPECT_EQ(two.get(), json::array({"e", "f"}));
  EXPECT_EQ(six.get().size(), 6u);
  EXPECT_EQ(gate.sizes, (std::vector<size_t>{1, 3, 2, 6}));
}

TEST(Batcher, WaitsForARequestOnItsWayButNotForNone) {
  Gate gate;
  gate.first = false;
  Batcher batcher(batcher_options(64, 2s), gate.run());
  // Alone: answered at once, not after the 2 s timeout.
  auto start = std::chrono::steady_clock::now();
  batcher.submit(batcher.arrive(), {"alone"}).get();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);

  // A request being read when another is queued: the worker waits for it.
  auto on_its_way = batcher.arrive();
  auto queued = batcher.submit(batcher.arrive(), {"x"});
  std::this_thread::sleep_for(50ms);
  auto late = batcher.submit(std::move(on_its_way), {"y"});
  EXPECT_EQ(queued.get(), json::array({"x"}));
  EXPECT_EQ(late.get(), json::array({"y"}));
  EXPECT_EQ(gate.sizes, (std::vector<size_t>{1, 2}));

  // One that turns out bad (never submitted) releases the wait too.
  start = std::chrono::steady_clock::now();
  {
    auto abandoned = batcher.arrive();
    auto pending = batcher.submit(batcher.arrive(), {"z"});
    std::this_thread::sleep_for(20ms);
    // `abandoned` goes out of scope here, as when a request fails its checks.
    (void)pending;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(Batcher, BoundedQueueRefusesWhenFull) {
  Gate gate;
  Batcher batcher(batcher_options(2, 0us, 3), gate.run());
  auto first = batcher.submit(batcher.arrive(), {"a"});
  gate.entered.get_future().wait();
  std::vector<std::future<json>> ok;
  for (int i = 0; i < 3; ++i) ok.push_back(batcher.submit(batcher.arrive(), {"q"}));
  EXPECT_THROW(batcher.submit(batcher.arrive(), {"over"}), serve::QueueFull);
  gate.release.set_value();
  for (auto& f : ok) EXPECT_EQ(f.get(), json::array({"q"}));
  first.get();
}

TEST(Batcher, AFailingRequestFailsAloneAndStopDrainsTheQueue) {
  Gate gate;
  auto batcher = std::make_unique<Batcher>(batcher_options(8, 0us), gate.run());
  auto first = batcher->submit(batcher->arrive(), {"a"});
  gate.entered.get_future().wait();
  auto good1 = batcher->submit(batcher->arrive(), {"g1"});
  auto bad = batcher->submit(batcher->arrive(), {"bad"});
  auto good2 = batcher->submit(batcher->arrive(), {"g2"});
  std::thread stopper([&] { batcher->stop(); });  // stop with requests still queued
  std::this_thread::sleep_for(20ms);
  gate.release.set_value();
  stopper.join();
  EXPECT_EQ(good1.get(), json::array({"g1"}));
  EXPECT_EQ(good2.get(), json::array({"g2"}));
  EXPECT_THROW(bad.get(), std::runtime_error);
  first.get();
  EXPECT_THROW(batcher->submit(batcher->arrive(), {"late"}), std::runtime_error);
}

TEST(Metrics, RendersPrometheusText) {
  serve::Metrics m;
  m.count_response("/predict", 200);
  m.count_response("/predict", 422);
  m.count_response("/no/such/path", 404);
  m.observe_predict(0.0007, 3);
  m.observe_batch(3, 0.0005);
  serve::Gauges g;
  g.queued_records = 5;
  g.ready = true;
  std::string text = m.render(g);
  EXPECT_NE(text.find("json2vec_requests_total{path=\"/predict\",code=\"200\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("json2vec_errors_total{path=\"/predict\",code=\"422\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("json2vec_errors_total{path=\"other\",code=\"404\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("json2vec_errors_total{path=\"/predict\",code=\"200\"}"), std::string::npos);
  const std::string bucket = "json2vec_request_duration_seconds_bucket{path=\"/predict\",";
  EXPECT_NE(text.find(bucket + "le=\"0.0005\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find(bucket + "le=\"0.00075\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find(bucket + "le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("json2vec_batch_size_bucket{le=\"4\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("json2vec_batch_size_sum 3\n"), std::string::npos);
  EXPECT_NE(text.find("json2vec_records_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE json2vec_queue_depth gauge\njson2vec_queue_depth 5\n"), std::string::npos);
  EXPECT_NE(text.find("json2vec_ready 1\n"), std::string::npos);
}

TEST(DeploymentOptions, EnvironmentThenSettersAndClearErrors) {
  setenv("JSON2VEC_PORT", "9123", 1);
  setenv("JSON2VEC_MAX_BATCH_SIZE", "32", 1);
  setenv("JSON2VEC_UNKNOWN_FIELDS", "reject", 1);
  setenv("JSON2VEC_BATCH_TIMEOUT_MS", "0.5", 1);
  setenv("JSON2VEC_FLOAT32_MATMUL_PRECISION", "medium", 1);
  auto o = DeploymentOptions::from_env();
  EXPECT_EQ(o.float32_matmul_precision(), "medium");
  EXPECT_EQ(DeploymentOptions().float32_matmul_precision(), "highest");
  EXPECT_EQ(o.port(), 9123);
  EXPECT_EQ(o.max_batch_size(), 32);
  EXPECT_EQ(o.unknown_fields(), "reject");
  EXPECT_DOUBLE_EQ(o.batch_timeout_ms(), 0.5);
  EXPECT_EQ(o.host(), "127.0.0.1");
  setenv("JSON2VEC_WORKERS", "two", 1);
  try {
    DeploymentOptions::from_env();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("JSON2VEC_WORKERS"), std::string::npos) << e.what();
  }
  for (const char* v : {"JSON2VEC_PORT", "JSON2VEC_MAX_BATCH_SIZE", "JSON2VEC_UNKNOWN_FIELDS",
                        "JSON2VEC_BATCH_TIMEOUT_MS", "JSON2VEC_WORKERS", "JSON2VEC_FLOAT32_MATMUL_PRECISION"})
    unsetenv(v);
  EXPECT_THROW(o.set("max_batch", "3"), std::invalid_argument);  // names the allowed keys
  EXPECT_THROW(DeploymentOptions().unknown_fields("drop").validate(), std::invalid_argument);
  try {
    DeploymentOptions().float32_matmul_precision("high").validate();
    FAIL() << "float32_matmul_precision 'high' was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("float32_matmul_precision must be 'highest' or 'medium'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(DeploymentOptions().max_batch_size(0).validate(), std::invalid_argument);
  // Bounded by the machine: a billion workers or 100,000 connection threads would exhaust it.
  for (auto bad : {DeploymentOptions().workers(1'000'000'000), DeploymentOptions().http_threads(100'000),
                   DeploymentOptions().max_header_bytes(int64_t{1} << 30)}) {
    try {
      bad.validate();
      ADD_FAILURE() << "accepted " << bad.to_json();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("must be <="), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(DeploymentOptions().workers(serve::kMaxThreadsPerCore).http_threads(serve::kMaxThreadsPerCore).validate());
}

// ---- Deployment -------------------------------------------------------------------------

std::vector<std::string> transactions(int n, uint64_t seed, bool with_target) {
  std::mt19937_64 rng(seed);
  const char* merchants[] = {"books", "coffee", "jewelry", "electronics"};
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string merchant = merchants[rng() % 4];
    double amount = static_cast<double>(rng() % 50000) / 100.0;
    json r = {{"amount", amount}, {"merchant", merchant}};
    if (with_target) r["fraud"] = (merchant == "jewelry" || merchant == "electronics") && amount > 250 ? "yes" : "no";
    out.push_back(r.dump());
  }
  return out;
}

// Numbers within a relative 1e-5, everything else exactly. Counts the numbers that are not
// bit-identical: a forward pass over a different set of records may sum floats in another
// order (a batch of one takes matrix-vector kernels), so only the same batch gives the
// same bits, in model.predict as in the service.
struct Difference {
  int inexact = 0;
  double max_absolute = 0;
  double max_relative = 0;  // over values of magnitude 1e-3 or more
};
void expect_same(const json& a, const json& b, const std::string& at, Difference* diff) {
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    EXPECT_NEAR(x, y, 1e-5 * std::max(1.0, std::abs(y))) << at;
    if (x != y && diff) {
      ++diff->inexact;
      diff->max_absolute = std::max(diff->max_absolute, std::abs(x - y));
      if (std::abs(y) >= 1e-3) diff->max_relative = std::max(diff->max_relative, std::abs(x - y) / std::abs(y));
    }
    return;
  }
  ASSERT_EQ(a.type(), b.type()) << at << ": " << a.dump() << " vs " << b.dump();
  if (a.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << at;
    for (auto& [k, v] : a.items()) {
      ASSERT_TRUE(b.contains(k)) << at << "." << k;
      expect_same(v, b[k], at + "." + k, diff);
    }
  } else if (a.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << at;
    for (size_t i = 0; i < a.size(); ++i) expect_same(a[i], b[i], at + "[" + std::to_string(i) + "]", diff);
  } else {
    EXPECT_EQ(a, b) << at;
  }
}

class Serving : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = testing::temp_dir("serve");
    auto model = Model::from_schema(
        {Number("amount"), Category("merchant"), Category("fraud").target().embed()},
        ModelOptions().d_model(16).n_layers(1).n_heads(2).embed(true));
    TableDataModule data(model.codec(), {.train = transactions(600, 1, true)}, TableDataOptions().batch_size(64));
    auto checkpoint = std::make_shared<engine::ModelCheckpoint>();
    engine::Trainer trainer(engine::TrainerOptions()
                                .max_epochs(2)
                                .default_root_dir(root_.string())
                                .enable_progress_bar(false)
                                .seed(0)
                                .num_threads(2)
                                .callbacks({checkpoint}));
    trainer.fit(model, data);
    ckpt_ = checkpoint->last_model_path();
    reference_ = std::make_unique<Model>(Model::load(ckpt_));
  }
  static void TearDownTestSuite() {
    reference_.reset();
    std::filesystem::remove_all(root_);
  }

  static std::unique_ptr<Deployment> serve(DeploymentOptions o = {}) {
    auto d = std::make_unique<Deployment>(o.ckpt_path(ckpt_).port(0));
    d->start();
    return d;
  }
  static httplib::Client client(const Deployment& d) {
    httplib::Client c("127.0.0.1", d.port());
    c.set_keep_alive(true);
    c.set_read_timeout(10, 0);
    return c;
  }

  static std::filesystem::path root_;
  static std::string ckpt_;
  static std::unique_ptr<Model> reference_;
};
std::filesystem::path Serving::root_;
std::string Serving::ckpt_;
std::unique_ptr<Model> Serving::reference_;

json metric_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return json::parse(line.substr(series.size() + 1));
  return nullptr;
}

TEST_F(Serving, AnswersLikeModelPredict) {
  auto d = serve();
  auto c = client(*d);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");

  auto schema = c.Get("/schema");
  ASSERT_TRUE(schema);
  auto s = json::parse(schema->body);
  EXPECT_EQ(s["name"], "record");
  ASSERT_EQ(s["fields"].size(), 3u);
  EXPECT_EQ(s["fields"][0]["address"], "record.amount");
  EXPECT_EQ(s["fields"][2]["target"], true);
  EXPECT_EQ(s["targets"], json::array({"record.fraud"}));

  auto records = transactions(20, 7, false);
  records.push_back(R"({"amount": 12.5, "merchant": "books"})");
  records.push_back(R"({"amount": "<MASK>", "merchant": "coffee", "extra": {"nested": [1, 2]}})");
  records.push_back(R"({"merchant": 7.0})");  // a number in a category field is read as written
  auto expected = reference_->predict(records);

  // One request at a time runs as a batch of one: the same bits as model.predict of one.
  Difference single;
  for (size_t i = 0; i < records.size(); ++i) {
    auto r = c.Post("/predict", records[i], "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    expect_same(json::parse(r->body), reference_->predict({records[i]})[0], "record " + std::to_string(i), &single);
  }
  EXPECT_EQ(single.inexact, 0);
  std::string list = "[";
  for (size_t i = 0; i < records.size(); ++i) list += (i ? ",\n  " : "") + records[i];
  list += "]";
  auto r = c.Post("/predict", list, "application/x-www-form-urlencoded");  // what `curl -d` sends
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Difference listed;
  expect_same(json::parse(r->body), expected, "list", &listed);
  EXPECT_EQ(listed.inexact, 0);  // the same records in one pass: the same bits
  auto masked = json::parse(r->body)[21]["predictions"];
  EXPECT_TRUE(masked.contains("record.amount"));  // "<MASK>" is imputed, as in batch predict
  EXPECT_EQ(json::parse(r->body)[0]["predictions"]["record"]["embedding"].size(), 16u);

  auto empty = c.Post("/predict", "[]", "application/json");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 200);
  EXPECT_EQ(empty->body, "[]");
}

TEST_F(Serving, RefusesBadRequestsWithAJsonErrorAndKeepsServing) {
  auto d = serve(DeploymentOptions().max_body_bytes(4096).max_records_per_request(10));
  auto c = client(*d);
  auto expect_error = [&](const std::string& body, int status, const std::string& mentions) {
    auto r = c.Post("/predict", body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    auto error = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(error.is_object()) << r->body;
    EXPECT_EQ(error["status"], status);
    EXPECT_NE(error["error"].get<std::string>().find(mentions), std::string::npos) << error.dump();
  };
  expect_error(R"({"amount": 1,)", 400, "malformed JSON");
  expect_error("", 400, "empty");
  expect_error(R"({"amount": 1} {"amount": 2})", 400, "malformed JSON");
  expect_error(R"({"amount": {"value": 1}, "merchant": "books"})", 422,
               "field 'record.amount' is an object, but the field is a number");
  expect_error(R"([{"amount": 1}, {"amount": 2}, {"amount": [3]}])", 422, "record 3: field 'record.amount'");
  expect_error(R"([{"amount": 1}, 5])", 422, "record 2 is a number, not a JSON object");
  expect_error(R"("amount")", 422, "the body is a JSON string");
  std::string eleven = "[";
  for (int i = 0; i < 11; ++i) eleven += std::string(i ? "," : "") + R"({"amount": 1})";
  eleven += "]";
  expect_error(eleven, 413, "max_records_per_request");
  expect_error(R"({"amount": ")" + std::string(5000, 'x') + R"("})", 413, "max_body_bytes");
  // Unknown fields are ignored by default, as in batch predict.
  auto ok = c.Post("/predict", R"({"amount": 1, "colour": "red"})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  auto nowhere = c.Get("/nowhere");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
  EXPECT_NE(json::parse(nowhere->body)["error"].get<std::string>().find("POST /predict"), std::string::npos);
  auto wrong_method = c.Get("/predict");
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->get_header_value("Allow"), "POST");

  // Still healthy, and the errors are counted.
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metric_value(metrics->body, R"(json2vec_errors_total{path="/predict",code="422"})"), 4);
  EXPECT_EQ(metric_value(metrics->body, R"(json2vec_errors_total{path="/predict",code="413"})"), 2) << metrics->body;
  EXPECT_EQ(metric_value(metrics->body, R"(json2vec_errors_total{path="/predict",code="400"})"), 3);
  EXPECT_EQ(metric_value(metrics->body, R"(json2vec_errors_total{path="other",code="404"})"), 1);
}

// ---- hostile clients, on raw sockets ---------------------------------------------------

// A TCP connection to the service that sends bytes as told and reads what comes back.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  void shutdown_writing() { ::shutdown(fd_, SHUT_WR); }
  // Everything received until the server closes, or `patience` passes without a byte.
  std::string receive(std::chrono::milliseconds patience = 3000ms) {
    std::string out;
    char buffer[65536];
    pollfd p{fd_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(patience.count())) > 0) {
      ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Slow and idle clients hold sockets, not threads: while hundreds of them trickle headers or
// say nothing, other clients are answered at once, and the slow ones get 408 in time.
TEST_F(Serving, SlowAndIdleClientsDoNotBlockOthers) {
  auto d = serve(DeploymentOptions().request_timeout_s(1.5).keep_alive_timeout_s(3));
  std::vector<std::unique_ptr<RawConnection>> slow, idle;
  for (int i = 0; i < 200; ++i) {
    slow.push_back(std::make_unique<RawConnection>(d->port()));
    idle.push_back(std::make_unique<RawConnection>(d->port()));
    ASSERT_TRUE(slow.back()->connected() && idle.back()->connected());
    slow.back()->send("P");  // a request has begun, and goes on a byte at a time
  }
  auto c = client(*d);
  double worst_ms = 0;
  for (int round = 0; round < 5; ++round) {
    for (auto& s : slow) s->send("O");
    auto start = std::chrono::steady_clock::now();
    auto health = c.Get("/health");
    auto predict = c.Post("/predict", R"({"amount": 3, "merchant": "coffee"})", "application/json");
    worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    ASSERT_TRUE(health && predict);
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(predict->status, 200);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_LT(worst_ms, 500.0) << "a probe waited behind slow clients";
  // Past request_timeout_s a request that never completed is answered 408 and closed.
  std::string answer = slow.front()->receive(3000ms);
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
  EXPECT_NE(answer.find("request_timeout_s"), std::string::npos) << answer;
}

// Pipelined requests are answered in order; a half-closed client still gets its answer;
// conflicting lengths, unknown transfer codings and oversized headers are refused at once.
TEST_F(Serving, PipelinedHalfClosedAndMalformedRequests) {
  auto d = serve(DeploymentOptions().max_body_bytes(4096));
  const std::string record = R"({"amount": 3, "merchant": "coffee"})";
  auto post = [&](const std::string& body, const std::string& extra = "") {
    return "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  {
    RawConnection pipelined(d->port());
    ASSERT_TRUE(pipelined.send(post(record) + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post("[" + record + "]") +
                               "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    std::string answers = pipelined.receive();
    EXPECT_EQ(count_of(answers, "HTTP/1.1 200"), 3) << answers;
    EXPECT_EQ(count_of(answers, "HTTP/1.1 404"), 1) << answers;
    size_t first = answers.find("\"predictions\""), health = answers.find("\"status\":\"ok\""),
           list = answers.find("[{\"inputs\""), missing = answers.find("HTTP/1.1 404");
    EXPECT_TRUE(first < health && health < list && list < missing) << answers;
  }
  {
    RawConnection half_closed(d->port());
    ASSERT_TRUE(half_closed.send(post(record)));
    half_closed.shutdown_writing();
    std::string answer = half_closed.receive();
    EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
    EXPECT_NE(answer.find("\"predictions\""), std::string::npos) << answer;
  }
  struct Case {
    std::string request;
    std::string status;
  };
  for (const Case& c : {
           Case{"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n" + record, "400"},
           Case{"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" + record, "400"},
           Case{"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n", "431"},
           Case{[] {
                  std::string many = "GET /health HTTP/1.1\r\nHost: x\r\n";
                  for (int i = 0; i < 100000; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
                  return many + "\r\n";
                }(),
                "431"},
           Case{"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", "413"},
           Case{"NOT HTTP AT ALL\r\n\r\n", "400"},
       }) {
    RawConnection raw(d->port());
    auto start = std::chrono::steady_clock::now();
    raw.send(c.request);
    std::string answer = raw.receive(2000ms);
    EXPECT_EQ(answer.rfind("HTTP/1.1 " + c.status, 0), 0u) << c.request.substr(0, 120) << " -> " << answer.substr(0, 300);
    EXPECT_NE(answer.find("\"error\""), std::string::npos) << answer.substr(0, 300);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms) << "answered late: " << c.request.substr(0, 80);
  }
  auto c = client(*d);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(Serving, RejectsUnknownFieldsWhenAskedTo) {
  auto d = serve(DeploymentOptions().unknown_fields("reject"));
  auto c = client(*d);
  auto r = c.Post("/predict", R"([{"amount": 1}, {"amount": 2, "colour": "red"}])", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find("record 2: unknown field 'colour'"),
            std::string::npos)
      << r->body;
  auto ok = c.Post("/predict", R"({"amount": 1, "merchant": "books", "fraud": "no"})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(Serving, BatchesConcurrentRequests) {
  auto d = serve(DeploymentOptions().max_batch_size(64).batch_timeout_ms(5).workers(1));
  auto records = transactions(16 * 25, 11, false);
  auto expected = reference_->predict(records);
  std::mutex mutex;
  Difference difference;
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t)
    clients.emplace_back([&, t] {
      auto c = client(*d);
      Difference mine;
      for (int i = 0; i < 25; ++i) {
        size_t k = static_cast<size_t>(t * 25 + i);
        auto r = c.Post("/predict", records[k], "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
        expect_same(json::parse(r->body), expected[k], "record " + std::to_string(k), &mine);
      }
      std::lock_guard<std::mutex> lock(mutex);
      difference.inexact += mine.inexact;
      difference.max_absolute = std::max(difference.max_absolute, mine.max_absolute);
      difference.max_relative = std::max(difference.max_relative, mine.max_relative);
    });
  for (auto& t : clients) t.join();
  auto c = client(*d);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  double batches = metric_value(metrics->body, "json2vec_batch_size_count").get<double>();
  double batched = metric_value(metrics->body, "json2vec_batch_size_sum").get<double>();
  EXPECT_EQ(batched, 400);
  EXPECT_GT(batched / batches, 1.5) << "no batching: " << batches << " passes for 400 records";
  EXPECT_EQ(metric_value(metrics->body, R"(json2vec_requests_total{path="/predict",code="200"})"), 400);
  EXPECT_EQ(metric_value(metrics->body, R"(json2vec_request_duration_seconds_count{path="/predict"})"), 400);
  EXPECT_EQ(metric_value(metrics->body, "json2vec_queue_depth"), 0);
  std::cout << "[ serving ] 400 concurrent requests ran in " << batches << " forward passes; against one "
            << "model.predict pass over all 400, " << difference.inexact << " numbers differ, by at most "
            << difference.max_absolute << " absolute, " << difference.max_relative << " relative\n";
}

TEST_F(Serving, StopAnswersEveryRequestItReceived) {
  auto d = serve(DeploymentOptions().workers(2));
  auto list = transactions(200, 3, false);
  std::string body = "[";
  for (size_t i = 0; i < list.size(); ++i) body += (i ? "," : "") + list[i];
  body += "]";
  std::atomic<bool> go{true};
  std::atomic<int> answered{0}, refused{0}, other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&] {
      auto c = client(*d);
      while (go) {
        auto r = c.Post("/predict", body, "application/json");
        if (!r) break;  // the connection was closed by the shutdown: nothing was half-answered
        if (r->status == 200 && json::parse(r->body).size() == 200) ++answered;
        else if (r->status >= 500) ++refused;
        else ++other;
      }
    });
  std::this_thread::sleep_for(300ms);
  d->stop();
  go = false;
  for (auto& t : clients) t.join();
  EXPECT_GT(answered, 0);
  EXPECT_EQ(refused, 0);
  EXPECT_EQ(other, 0);
  EXPECT_FALSE(d->ready());
  httplib::Client after("127.0.0.1", d->port());
  EXPECT_FALSE(after.Get("/health"));  // no longer listening
}

TEST_F(Serving, StartupErrorsAreClear) {
  auto untrained = Model::from_schema({Number("amount"), Category("fraud").target()});
  EXPECT_THROW(Deployment(untrained, DeploymentOptions().port(0)).start(), std::invalid_argument);
  EXPECT_THROW(Deployment(DeploymentOptions().ckpt_path((root_ / "missing.ckpt").string()).port(0)).start(),
               engine::CheckpointError);
  auto d = serve();
  try {
    Deployment(DeploymentOptions().ckpt_path(ckpt_).port(d->port())).start();
    FAIL() << "a second server bound the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(d->port())), std::string::npos)
        << e.what();
  }
  // An in-memory model serves as well as a checkpoint.
  Deployment in_memory(*reference_, DeploymentOptions().port(0));
  in_memory.start();
  auto c = client(in_memory);
  auto r = c.Post("/predict", R"({"amount": 3, "merchant": "coffee"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// ---- the command line ---------------------------------------------------------------------

TEST_F(Serving, CommandLineServesAndStopsOnSigterm) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> env_strings = {"JSON2VEC_MAX_RECORDS_PER_REQUEST=7", "JSON2VEC_WORKERS=2"};
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  // The flag wins over the variable; --override switches the merchant off at start-up.
  std::vector<std::string> args = {JSON2VEC_BINARY, "serve", "--ckpt_path", ckpt_, "--port", "0",
                                   "--max_records_per_request=5", "--override", "record.merchant.active=false"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, JSON2VEC_BINARY, &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);

  std::string line;
  pollfd p{out[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos && poll(&p, 1, 20000) > 0) {
    char buf[256];
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  ASSERT_NE(line.find('\n'), std::string::npos) << "no ready line: '" << line << "'";
  std::string listening = json::parse(line.substr(0, line.find('\n')))["listening"];
  ASSERT_EQ(listening.rfind("127.0.0.1:", 0), 0u) << listening;
  int port = std::stoi(listening.substr(listening.find(':') + 1));

  httplib::Client c("127.0.0.1", port);
  auto schema = c.Get("/schema");
  ASSERT_TRUE(schema);
  EXPECT_EQ(json::parse(schema->body)["max_records_per_request"], 5);
  EXPECT_NE(schema->body.find(R"("active":false)"), std::string::npos) << schema->body;
  auto r = c.Post("/predict", R"({"amount": 3, "merchant": "coffee"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // As the checkpoint's model with the same override.
  Model overridden = Model::load(ckpt_);
  overridden.update(where("name") == "merchant", {{"active", false}});
  expect_same(json::parse(r->body), overridden.predict({R"({"amount": 3, "merchant": "coffee"})"})[0], "cli", nullptr);

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(out[0]);
}

}  // namespace
}  // namespace j2v
