#include "serve/deployment.h"

#include <fmt/format.h>
#include <omp.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include "base/errors.h"
#include "base/raw_json.h"
#include "data/record_batch.h"
#include "data/record_buffer.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "data/record_codec.h"
#include "engine/precision.h"
#include "schema/query_path.h"
#include "serve/batcher.h"
#include "serve/http_error.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/request_reader.h"

namespace j2v::serve {

using serve::Batcher;
using serve::HttpError;
using Clock = std::chrono::steady_clock;

namespace {

std::string error_body(int status, const std::string& message) {
  return nlohmann::json{{"error", message}, {"status", status}}.dump();
}

HttpResponse error_response(int status, const std::string& message) {
  HttpResponse response;
  response.status = status;
  response.body = error_body(status, message);
  return response;
}

HttpResponse json_response(std::string body) {
  HttpResponse response;
  response.body = std::move(body);
  return response;
}

// The body as sent: identity, gzip or deflate (zlib), inflated to at most `limit` bytes so a
// small compressed body cannot expand without bound.
std::string decoded_body(const HttpRequest& request, size_t limit) {
  std::string encoding = request.header("Content-Encoding");
  for (auto& c : encoding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (encoding.empty() || encoding == "identity") return request.body;
  if (encoding != "gzip" && encoding != "deflate" && encoding != "x-gzip")
    throw HttpError(415, fmt::format("unsupported Content-Encoding '{}' (send the body uncompressed, gzip or deflate)",
                                     encoding));
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) throw HttpError(500, "cannot start zlib");  // 32: gzip or zlib header
  std::string out;
  char chunk[65536];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(request.body.data()));
  z.avail_in = static_cast<uInt>(request.body.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      throw HttpError(400, "the compressed body is corrupt or truncated");
    }
    out.append(chunk, sizeof(chunk) - z.avail_out);
    if (out.size() > limit) {
      inflateEnd(&z);
      throw HttpError(413, fmt::format("the request body is larger than {} bytes once decompressed (max_body_bytes)",
                                       limit));
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      throw HttpError(400, "the compressed body is truncated");
    }
  }
  inflateEnd(&z);
  return out;
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

  std::unique_ptr<HttpServer> server;
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
  void handle(HttpRequest request, Respond respond);
  void predict(HttpRequest request, Respond respond);
  nlohmann::json run_batch(int worker, const std::vector<std::string>& records);
  void stop();
};

nlohmann::json Deployment::State::run_batch(int worker, const std::vector<std::string>& records) {
  // Inference mode: no autograd graph and no version counters, cheaper than NoGradGuard.
  c10::InferenceMode inference;
  return replicas[static_cast<size_t>(worker)].predict(records, options.max_batch_size(), 1);
}

void Deployment::State::predict(HttpRequest request, Respond respond) {
  auto start = Clock::now();
  in_flight.fetch_add(1, std::memory_order_relaxed);
  // Answered once, from whichever thread finishes the request; in_flight counts until then.
  auto answer = [this, respond](HttpResponse response) {
    in_flight.fetch_sub(1, std::memory_order_relaxed);
    respond(std::move(response));
  };
  if (!loaded.load(std::memory_order_acquire)) return answer(error_response(503, "the model is still loading; retry shortly"));
  // Announced before the body is checked, so a collecting worker knows to wait for it.
  Batcher::Arrival arrival = batcher->arrive();
  try {
    std::string body = decoded_body(request, static_cast<size_t>(options.max_body_bytes()));
    serve::ReadRequest read = reader->read(std::move(body));
    if (read.records.empty()) return answer(json_response("[]"));
    int64_t n = static_cast<int64_t>(read.records.size());
    bool list = read.list;
    batcher->submit(std::move(arrival), std::move(read.records),
                    [this, answer, list, n, start](nlohmann::json rows, std::exception_ptr error) {
                      if (error) {
                        try {
                          std::rethrow_exception(error);
                        } catch (const DataError& e) {
                          return answer(error_response(422, e.what()));
                        } catch (const std::exception& e) {
                          std::string what = e.what();
                          return answer(error_response(stopping ? 503 : 500,
                                                       "internal error: " + what.substr(0, what.find('\n'))));
                        }
                      }
                      answer(json_response(dump_with_raw_json(list ? rows : rows[0])));
                      metrics.observe_predict(std::chrono::duration<double>(Clock::now() - start).count(), n);
                    });
  } catch (const HttpError& e) {
    answer(error_response(e.status(), e.what()));
  } catch (const serve::QueueFull& e) {
    auto response = error_response(503, e.what());
    response.headers.emplace_back("Retry-After", "1");
    answer(std::move(response));
  } catch (const DataError& e) {
    answer(error_response(422, e.what()));
  } catch (const std::exception& e) {
    std::string what = e.what();
    answer(error_response(stopping ? 503 : 500, "internal error: " + what.substr(0, what.find('\n'))));
  }
}

void Deployment::State::handle(HttpRequest request, Respond respond) {
  const std::string& path = request.path;
  const char* allowed = path == "/predict" ? "POST" : "GET";
  if (!known_route(path))
    return respond(error_response(404, fmt::format("no such endpoint: {} {} (endpoints: POST /predict, GET /health, "
                                                   "GET /metrics, GET /schema)",
                                                   request.method, path)));
  if (request.method != allowed) {
    auto response = error_response(405, fmt::format("{} takes {}, not {}", path, allowed, request.method));
    response.headers.emplace_back("Allow", allowed);
    return respond(std::move(response));
  }
  if (path == "/predict") return predict(std::move(request), std::move(respond));
  if (path == "/health") {
    if (ready.load(std::memory_order_acquire)) return respond(json_response(R"({"status":"ok"})"));
    auto response = json_response(stopping ? R"({"status":"stopping"})" : R"({"status":"loading"})");
    response.status = 503;
    return respond(std::move(response));
  }
  if (path == "/metrics") {
    serve::Gauges g;
    g.ready = ready.load(std::memory_order_acquire);
    g.in_flight = in_flight.load(std::memory_order_relaxed);
    g.workers = options.workers();
    if (loaded.load(std::memory_order_acquire)) {
      g.queued_records = batcher->queued_records();
      g.queued_requests = batcher->queued_requests();
    }
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics.render(g);
    return respond(std::move(response));
  }
  // /schema
  if (!loaded.load(std::memory_order_acquire))
    return respond(error_response(503, "the model is still loading; retry shortly"));
  respond(json_response(schema_json));
}

void Deployment::State::configure_server() {
  const auto& o = options;
  HttpServerOptions h;
  h.host = o.host();
  h.port = static_cast<int>(o.port());
  h.threads = static_cast<int>(o.http_threads());
  h.max_connections = o.max_connections();
  h.max_header_bytes = static_cast<size_t>(o.max_header_bytes());
  h.max_body_bytes = static_cast<size_t>(o.max_body_bytes());
  h.request_timeout_s = o.request_timeout_s();
  h.idle_timeout_s = o.keep_alive_timeout_s();
  server = std::make_unique<HttpServer>(
      h, [this](HttpRequest request, Respond respond) { handle(std::move(request), std::move(respond)); },
      &error_response,
      [this](const std::string& path, int status) { metrics.count_response(path.empty() ? "other" : path, status); });
}

void Deployment::State::stop() {
  std::unique_lock<std::mutex> lock(lifecycle);
  if (!started || stopped) return;
  stopping = true;
  ready.store(false, std::memory_order_release);
  // Stops accepting; a request already received is answered (its batch still runs), then
  // every connection closes and the server's threads return.
  server->stop();
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
    s.server->listen();  // throws "cannot listen on HOST:PORT: reason"
    s.port = s.server->port();
    s.server->start();
    s.started = true;
  }
  try {
    if (!engine::set_float32_matmul_precision(s.options.float32_matmul_precision()) &&
        s.options.float32_matmul_precision() == "medium")
      std::cerr << "warning: float32_matmul_precision is medium, but this CPU has no AVX-512 BF16 (or this program "
                   "keeps LibTorch's BLAS): matrix products stay float32\n";
    s.model = s.given ? *s.given : Model::load(s.options.ckpt_path());
    int workers = static_cast<int>(s.options.workers());
    for (int w = 0; w < workers; ++w) {
      s.replicas.push_back(s.model->clone());
      s.replicas.back().impl().set_text_predictions(true);  // answers are printed, never read
    }
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
