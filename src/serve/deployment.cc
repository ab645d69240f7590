#include "serve/deployment.h"

#include <fmt/format.h>
#include <httplib.h>
#include <omp.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <optional>
#include <thread>

#include "base/errors.h"
#include "data/record_batch.h"
#include "data/record_buffer.h"
#include "model/model.h"
#include "data/record_codec.h"
#include "schema/query_path.h"
#include "serve/batcher.h"
#include "serve/http_error.h"
#include "serve/metrics.h"
#include "serve/request_reader.h"

namespace j2v::serve {

using serve::Batcher;
using serve::HttpError;
using Clock = std::chrono::steady_clock;

namespace {

const char* kJson = "application/json";

std::string error_body(int status, const std::string& message) {
  return nlohmann::json{{"error", message}, {"status", status}}.dump();
}

void answer_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(error_body(status, message), kJson);
}

nlohmann::json schema_payload(const Model& model, const DeploymentOptions& options) {
  const Schema& schema = model.schema();
  nlohmann::json fields = nlohmann::json::array();
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& spec : schema.fields) {
    std::string address = schema.root().child(spec.name).str();
    fields.push_back({{"address", address},
                      {"name", spec.name},
                      {"type", spec.type},
                      {"query", format_query_path(spec.query_keys())},
                      {"target", spec.target},
                      {"embed", spec.embed},
                      {"nullable", spec.nullable},
                      {"active", spec.active}});
    if (spec.target && spec.active) targets.push_back(address);
  }
  const auto& o = model.options();
  return {{"name", schema.name},
          {"fields", fields},
          {"targets", targets},
          {"record_embedding", o.embed()},
          {"model", {{"d_model", o.d_model()}, {"n_layers", o.n_layers()}, {"n_heads", o.n_heads()}}},
          {"unknown_fields", options.unknown_fields()},
          {"max_records_per_request", options.max_records_per_request()}};
}

bool known_route(const std::string& path) {
  return path == "/predict" || path == "/health" || path == "/metrics" || path == "/schema";
}

}  // namespace

struct Deployment::State {
  DeploymentOptions options;
  std::optional<Model> given;

  std::optional<Model> model;  // schema and codec, read by connection threads
  std::vector<Model> replicas;   // one per worker: a module is not safe to run from two threads
  std::unique_ptr<serve::RequestReader> reader;
  std::unique_ptr<Batcher> batcher;
  std::string schema_json;
  serve::Metrics metrics;

  httplib::Server server;
  std::thread http_thread;
  int listen_fd = -1;
  int port = 0;

  // loaded: the model and batcher exist (stays true while stopping, so requests received
  // during the drain are still answered); ready: loaded and not stopping (/health).
  std::atomic<bool> loaded{false};
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
  std::atomic<int64_t> in_flight{0};

  std::mutex lifecycle;
  std::condition_variable stopped_cv;
  bool started = false;
  bool stopped = false;

  void configure_server();
  void predict(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& content);
  nlohmann::json run_batch(int worker, const std::vector<std::string>& records);
  void stop();
};

nlohmann::json Deployment::State::run_batch(int worker, const std::vector<std::string>& records) {
  // Inference mode: no autograd graph and no version counters, cheaper than NoGradGuard.
  c10::InferenceMode inference;
  return replicas[static_cast<size_t>(worker)].predict(records, options.max_batch_size(), 1);
}

void Deployment::State::predict(const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& content) {
  auto start = Clock::now();
  in_flight.fetch_add(1, std::memory_order_relaxed);
  struct Leave {
    std::atomic<int64_t>& n;
    ~Leave() { n.fetch_sub(1, std::memory_order_relaxed); }
  } leave{in_flight};
  bool is_loaded = loaded.load(std::memory_order_acquire);
  // Announced before the body is read, so a collecting worker knows to wait for it.
  std::optional<Batcher::Arrival> arrival;
  if (is_loaded) arrival.emplace(batcher->arrive());

  // The body is read here, not by httplib, so the limit holds for chunked and compressed
  // bodies too (httplib checks only Content-Length) and no form parsing happens.
  const size_t limit = static_cast<size_t>(options.max_body_bytes());
  std::string body;
  bool too_large = false;
  if (req.has_header("Content-Length")) {
    auto length = req.get_header_value<uint64_t>("Content-Length");
    if (length <= limit) body.reserve(length);
  }
  bool read = content([&](const char* data, size_t n) {
    if (body.size() + n > limit) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large || res.status == 413) {
    // Whatever is left of the body is unread: the connection cannot carry another request.
    if (too_large) res.set_header("Connection", "close");
    return answer_error(res, 413,
                        fmt::format("the request body is larger than {} bytes (max_body_bytes): send fewer records "
                                    "per request",
                                    limit));
  }
  if (!read) {
    res.set_header("Connection", "close");
    return answer_error(res, 400, "could not read the request body (truncated, or a bad chunked/compressed encoding)");
  }
  if (!is_loaded) return answer_error(res, 503, "the model is still loading; retry shortly");

  try {
    serve::ReadRequest request = reader->read(std::move(body));
    if (request.records.empty()) {
      res.set_content("[]", kJson);
      return;
    }
    int64_t n = static_cast<int64_t>(request.records.size());
    auto future = batcher->submit(std::move(*arrival), std::move(request.records));
    nlohmann::json rows = future.get();
    std::string out = request.list ? rows.dump() : rows[0].dump();
    res.set_content(std::move(out), kJson);
    metrics.observe_predict(std::chrono::duration<double>(Clock::now() - start).count(), n);
  } catch (const HttpError& e) {
    answer_error(res, e.status(), e.what());
  } catch (const serve::QueueFull& e) {
    res.set_header("Retry-After", "1");
    answer_error(res, 503, e.what());
  } catch (const DataError& e) {
    answer_error(res, 422, e.what());
  } catch (const std::exception& e) {
    std::string what = e.what();
    answer_error(res, stopping ? 503 : 500, "internal error: " + what.substr(0, what.find('\n')));
  }
}

void Deployment::State::configure_server() {
  const auto& o = options;
  size_t threads = static_cast<size_t>(o.http_threads());
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_tcp_nodelay(true);  // responses go out in two writes (headers, body): no Nagle delay
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(static_cast<time_t>(std::ceil(o.keep_alive_timeout_s())));
  server.set_payload_max_length(static_cast<size_t>(o.max_body_bytes()));
  server.set_socket_options([this](socket_t sock) {
    // httplib's default adds SO_REUSEPORT, which would let a second server share the port
    // silently; a port in use must be an error.
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd = sock;
  });

  server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (ready.load(std::memory_order_acquire)) return res.set_content(R"({"status":"ok"})", kJson);
    res.status = 503;
    res.set_content(stopping ? R"({"status":"stopping"})" : R"({"status":"loading"})", kJson);
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    serve::Gauges g;
    g.ready = ready.load(std::memory_order_acquire);
    g.in_flight = in_flight.load(std::memory_order_relaxed);
    g.workers = options.workers();
    if (loaded.load(std::memory_order_acquire)) {
      g.queued_records = batcher->queued_records();
      g.queued_requests = batcher->queued_requests();
    }
    res.set_content(metrics.render(g), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/schema", [this](const httplib::Request&, httplib::Response& res) {
    if (!loaded.load(std::memory_order_acquire))
      return answer_error(res, 503, "the model is still loading; retry shortly");
    res.set_content(schema_json, kJson);
  });
  server.Post("/predict", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& c) {
    predict(req, res, c);
  });
  // A client announcing a body over the limit is refused before it sends it.
  server.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.has_header("Content-Length") &&
        req.get_header_value<uint64_t>("Content-Length") > static_cast<uint64_t>(options.max_body_bytes())) {
      res.status = 413;
      return 413;
    }
    return 100;
  });
  // Every 4xx/5xx gets a JSON body naming the problem, including those httplib answers itself.
  server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    if (res.status == 404 && known_route(req.path)) {
      res.status = 405;
      const char* allowed = req.path == "/predict" ? "POST" : "GET";
      res.set_header("Allow", allowed);
      message = fmt::format("{} takes {}, not {}", req.path, allowed, req.method);
    } else if (res.status == 404) {
      message = fmt::format("no such endpoint: {} {} (endpoints: POST /predict, GET /health, GET /metrics, "
                            "GET /schema)",
                            req.method, req.path);
    } else if (res.status == 413) {
      message = fmt::format("the request body is larger than {} bytes (max_body_bytes): send fewer records per request",
                            options.max_body_bytes());
    } else if (res.status == 414) {
      message = "the request line is too long";
    } else if (res.status == 415) {
      message = "unsupported Content-Encoding (send the body uncompressed, gzip or br)";
    } else if (res.status == 400) {
      message = "malformed HTTP request";
    } else {
      message = fmt::format("the request was refused (HTTP {})", res.status);
    }
    res.set_content(error_body(res.status, message), kJson);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    answer_error(res, 500, "internal error: " + what.substr(0, what.find('\n')));
  });
  server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.count_response(req.path, res.status);
  });
}

void Deployment::State::stop() {
  std::unique_lock<std::mutex> lock(lifecycle);
  if (!started || stopped) return;
  stopping = true;
  ready.store(false, std::memory_order_release);
  // Closes the listening socket; connection threads finish the request they hold, and the
  // listen thread returns once every one of them has.
  server.stop();
  if (http_thread.joinable()) http_thread.join();
  if (batcher) batcher->stop();  // nothing can be queued any more: this only joins the workers
  stopped = true;
  stopped_cv.notify_all();
}

Deployment::Deployment(DeploymentOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
}

Deployment::Deployment(Model model, DeploymentOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->given = std::move(model);
}

Deployment::~Deployment() { stop(); }

void Deployment::start() {
  State& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.lifecycle);
    if (s.started) throw std::logic_error("Deployment::start() was called twice");
    s.options.validate();
    if (!s.given && s.options.ckpt_path().empty())
      throw std::invalid_argument("serve needs a checkpoint: pass --ckpt_path FILE (or set JSON2VEC_CKPT_PATH)");
    if (s.given && !s.given->trained())
      throw std::invalid_argument("the model has not been trained: fit it or load a checkpoint before serving it");
    s.configure_server();
    const std::string& host = s.options.host();
    errno = 0;
    bool bound = false;
    if (s.options.port() == 0) {
      int port = s.server.bind_to_any_port(host);
      bound = port > 0;
      s.port = port;
    } else {
      bound = s.server.bind_to_port(host, static_cast<int>(s.options.port()));
      s.port = static_cast<int>(s.options.port());
    }
    if (!bound) {
      int err = errno;
      throw std::runtime_error(fmt::format("cannot listen on {}:{}{}", host, s.options.port(),
                                           err ? std::string(": ") + std::strerror(err) : std::string()));
    }
    // httplib listens with a backlog of 5: a burst of new connections would see SYNs dropped
    // and one-second retransmits. Listening again only raises the backlog.
    if (s.listen_fd >= 0) ::listen(s.listen_fd, SOMAXCONN);
    s.http_thread = std::thread([&s] { s.server.listen_after_bind(); });
    // stop() before the server runs would be lost: wait until it does.
    while (!s.server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s.started = true;
  }
  try {
    s.model = s.given ? *s.given : Model::load(s.options.ckpt_path());
    int workers = static_cast<int>(s.options.workers());
    for (int w = 0; w < workers; ++w) s.replicas.push_back(s.model->clone());
    s.reader = std::make_unique<serve::RequestReader>(s.model->schema().fields, s.model->codec()->encoder(),
                                                      s.options.max_records_per_request(),
                                                      s.options.unknown_fields() == "reject");
    s.schema_json = schema_payload(*s.model, s.options).dump();
    serve::BatcherOptions bo;
    bo.max_batch_size = s.options.max_batch_size();
    bo.batch_timeout = std::chrono::microseconds(static_cast<int64_t>(s.options.batch_timeout_ms() * 1000.0));
    bo.max_queue_records = s.options.max_queue_records();
    bo.workers = workers;
    s.batcher = std::make_unique<Batcher>(
        bo, [&s](int worker, const std::vector<std::string>& records) { return s.run_batch(worker, records); },
        [](int) {
          // One intra-op thread per worker: requests are parallel across workers and
          // connections, and a second kernel thread would only contend for the same cores.
          // Set on this thread alone (after LibTorch's own per-thread setup, which would
          // override it), so nothing else in the process changes.
          at::internal::lazy_init_num_threads();
          omp_set_num_threads(1);
        },
        [&s](int64_t records, double seconds) { s.metrics.observe_batch(records, seconds); });
  } catch (...) {
    s.stop();
    throw;
  }
  std::lock_guard<std::mutex> lock(s.lifecycle);
  if (s.stopped) {
    s.batcher->stop();  // stop() came while the model was loading
    return;
  }
  s.loaded.store(true, std::memory_order_release);
  s.ready.store(true, std::memory_order_release);
}

void Deployment::stop() { state_->stop(); }

void Deployment::wait() {
  std::unique_lock<std::mutex> lock(state_->lifecycle);
  state_->stopped_cv.wait(lock, [&] { return state_->stopped || !state_->started; });
}

bool Deployment::ready() const { return state_->ready.load(std::memory_order_acquire); }
int Deployment::port() const { return state_->port; }
const std::string& Deployment::host() const { return state_->options.host(); }
const DeploymentOptions& Deployment::options() const { return state_->options; }

}  // namespace j2v::serve
