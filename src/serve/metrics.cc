#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace j2v::serve {

namespace {
constexpr auto kRelaxed = std::memory_order_relaxed;

// Prometheus' float text: integers without a fraction, +Inf spelled its way.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}
}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, kRelaxed);
}

void Histogram::observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();  // le: value <= bound
  buckets_[i].fetch_add(1, kRelaxed);
  count_.fetch_add(1, kRelaxed);
  sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(std::max(0.0, value) * 1e6)), kRelaxed);
}

double Histogram::sum() const { return static_cast<double>(sum_micro_.load(kRelaxed)) / 1e6; }

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::string prefix = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += buckets_[i].load(kRelaxed);
    double le = i < bounds_.size() ? bounds_[i] : INFINITY;
    out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, prefix, number(le), cumulative);
  }
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, number(sum()), name, braces, count());
}

Metrics::Metrics()
    : responses_(new std::atomic<uint64_t>[kRoutes.size() * kCodes]),
      predict_seconds_({0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025,
                        0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      batch_records_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}),
      batch_seconds_({0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {
  for (size_t i = 0; i < kRoutes.size() * kCodes; ++i) responses_[i].store(0, kRelaxed);
}

void Metrics::count_response(std::string_view path, int status) {
  size_t route = kRoutes.size() - 1;
  for (size_t r = 0; r + 1 < kRoutes.size(); ++r)
    if (kRoutes[r] == path) route = r;
  if (status < 0 || status >= kCodes) status = 0;
  responses_[route * kCodes + status].fetch_add(1, kRelaxed);
}

void Metrics::observe_predict(double seconds, int64_t records) {
  predict_seconds_.observe(seconds);
  records_.fetch_add(static_cast<uint64_t>(records), kRelaxed);
}

void Metrics::observe_batch(int64_t records, double seconds) {
  batch_records_.observe(static_cast<double>(records));
  batch_seconds_.observe(seconds);
}

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  out.reserve(8192);
  auto by_code = [&](const char* name, const char* help, int min_status) {
    header(out, name, "counter", help);
    for (size_t r = 0; r < kRoutes.size(); ++r)
      for (int code = min_status; code < kCodes; ++code) {
        uint64_t n = responses_[r * kCodes + code].load(kRelaxed);
        if (n) out += fmt::format("{}{{path=\"{}\",code=\"{}\"}} {}\n", name, kRoutes[r], code, n);
      }
  };
  by_code("json2vec_requests_total", "HTTP responses by route and status code.", 0);
  by_code("json2vec_errors_total", "HTTP responses with a 4xx or 5xx status, by route and status code.", 400);

  header(out, "json2vec_records_total", "counter", "Records predicted (answered /predict requests).");
  out += fmt::format("json2vec_records_total {}\n", records_.load(kRelaxed));
  header(out, "json2vec_request_duration_seconds", "histogram",
         "/predict latency from the request's headers being read to its answer being ready.");
  predict_seconds_.render(out, "json2vec_request_duration_seconds", "path=\"/predict\"");
  header(out, "json2vec_batch_size", "histogram", "Records per forward pass.");
  batch_records_.render(out, "json2vec_batch_size");
  header(out, "json2vec_batch_duration_seconds", "histogram", "Time per forward pass, encoding and payloads included.");
  batch_seconds_.render(out, "json2vec_batch_duration_seconds");

  header(out, "json2vec_queue_depth", "gauge", "Records waiting for a worker.");
  out += fmt::format("json2vec_queue_depth {}\n", g.queued_records);
  header(out, "json2vec_queue_requests", "gauge", "Requests waiting for a worker.");
  out += fmt::format("json2vec_queue_requests {}\n", g.queued_requests);
  header(out, "json2vec_requests_in_flight", "gauge", "/predict requests received and not yet answered.");
  out += fmt::format("json2vec_requests_in_flight {}\n", g.in_flight);
  header(out, "json2vec_workers", "gauge", "Forward-pass worker threads.");
  out += fmt::format("json2vec_workers {}\n", g.workers);
  header(out, "json2vec_ready", "gauge", "1 once the model is loaded and requests are taken.");
  out += fmt::format("json2vec_ready {}\n", g.ready ? 1 : 0);
  return out;
}

}  // namespace j2v::serve
