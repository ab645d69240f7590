#pragma once
// The service's counters and histograms, rendered in the Prometheus text format (0.0.4).
// Everything on the request path is a relaxed atomic: a scrape may see a request counted
// in one series and not yet in another, which Prometheus tolerates, and serving never
// waits on a lock for bookkeeping.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace j2v::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket/_sum/_count series (cumulative, as Prometheus wants them).
  void render(std::string& out, const std::string& name, const std::string& labels = "") const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf), not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // the sum in millionths: integer adds need no CAS loop
};

// What the metrics cannot count themselves; read from the deployment at scrape time.
struct Gauges {
  int64_t queued_records = 0;
  int64_t queued_requests = 0;
  int64_t in_flight = 0;  // /predict requests received and not yet answered
  bool ready = false;
  int64_t workers = 0;
};

class Metrics {
 public:
  Metrics();
  // Every response, by route and status (requests_total; errors_total when >= 400).
  void count_response(std::string_view path, int status);
  void observe_predict(double seconds, int64_t records);  // answered /predict requests
  void observe_batch(int64_t records, double seconds);    // forward passes
  std::string render(const Gauges& gauges) const;

  // Routes are a fixed set so that a client probing random paths cannot grow the label space.
  static constexpr std::array<std::string_view, 5> kRoutes = {"/predict", "/health", "/metrics", "/schema", "other"};

 private:
  static constexpr int kCodes = 600;
  std::unique_ptr<std::atomic<uint64_t>[]> responses_;  // kRoutes.size() * kCodes
  std::atomic<uint64_t> records_{0};
  Histogram predict_seconds_;
  Histogram batch_records_;
  Histogram batch_seconds_;
};

}  // namespace j2v::serve
