#pragma once
// Dynamic batching: requests from many connections wait in one bounded queue; worker
// threads take requests off it and run their records as one forward pass, then answer
// each request with its own rows.
//
// When to stop collecting: a worker that holds at least one request keeps adding requests
// until it has max_batch_size records, or the oldest has waited batch_timeout, or no
// other request is on its way (being read or checked by a connection thread). The last
// rule is what keeps a lone client at single-request latency: the batcher waits for
// requests it knows are coming, never for ones that might.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace j2v::serve {

// The queue holds max_queue_records already: answer 503 and let the client retry.
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BatcherOptions {
  int64_t max_batch_size = 128;
  std::chrono::microseconds batch_timeout{2000};
  int64_t max_queue_records = 8192;
  int workers = 1;
};

class Batcher {
 public:
  // Runs on worker `worker`: the records of one or more requests, in queue order; returns
  // a JSON array with one row per record. An exception fails the requests in the batch:
  // when there are several, each is retried alone so only the culprit fails.
  using RunBatch = std::function<nlohmann::json(int worker, const std::vector<std::string>& records)>;
  using OnWorkerStart = std::function<void(int worker)>;
  using OnBatch = std::function<void(int64_t records, double seconds)>;

  // A request being read or checked. While any exists, a collecting worker waits (up to
  // the timeout) for it rather than running a smaller batch now.
  class Arrival {
   public:
    Arrival(Arrival&& other) noexcept : batcher_(other.batcher_) { other.batcher_ = nullptr; }
    Arrival& operator=(Arrival&&) = delete;
    Arrival(const Arrival&) = delete;
    ~Arrival();

   private:
    friend class Batcher;
    explicit Arrival(Batcher* batcher) : batcher_(batcher) {}
    Batcher* batcher_;
  };

  Batcher(BatcherOptions options, RunBatch run, OnWorkerStart on_start = nullptr, OnBatch on_batch = nullptr);
  ~Batcher();  // stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  Arrival arrive();
  // Queues a request; `done` is called on a worker thread with the request's rows (a JSON
  // array), or with the error that failed them. Throws QueueFull when the queue is full,
  // std::runtime_error after stop(); `done` is not called then.
  using Done = std::function<void(nlohmann::json rows, std::exception_ptr error)>;
  void submit(Arrival arrival, std::vector<std::string> records, Done done);
  // The same, waited for through a future.
  std::future<nlohmann::json> submit(Arrival arrival, std::vector<std::string> records);
  // Stops taking requests, answers every queued one, joins the workers. Idempotent.
  void stop();

  int64_t queued_records() const;
  int64_t queued_requests() const;
  const BatcherOptions& options() const { return options_; }

 private:
  struct Job {
    std::vector<std::string> records;
    Done done;
    std::chrono::steady_clock::time_point enqueued;
  };
  void work(int worker);
  void run(int worker, std::vector<Job>& batch);
  void depart();

  BatcherOptions options_;
  RunBatch run_;
  OnWorkerStart on_start_;
  OnBatch on_batch_;

  mutable std::mutex mutex_;
  // Two wait lists, so each event wakes the one thread it concerns: a context switch costs
  // more than a small forward pass's worth of bookkeeping.
  std::condition_variable queue_cv_;    // idle workers: something to collect, or stop
  std::condition_variable collect_cv_;  // the collecting worker: a request queued or abandoned
  std::deque<Job> queue_;
  int64_t queued_records_ = 0;
  int64_t arriving_ = 0;
  bool collecting_ = false;  // one worker collects at a time, so batches are not split between idle workers
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::once_flag stopped_;
};

}  // namespace j2v::serve
