#include "serve/batcher.h"

#include <fmt/format.h>

namespace j2v::serve {

using Clock = std::chrono::steady_clock;

Batcher::Arrival::~Arrival() {
  if (batcher_) batcher_->depart();
}

Batcher::Batcher(BatcherOptions options, RunBatch run, OnWorkerStart on_start, OnBatch on_batch)
    : options_(options), run_(std::move(run)), on_start_(std::move(on_start)), on_batch_(std::move(on_batch)) {
  if (options_.max_batch_size < 1 || options_.workers < 1 || options_.max_queue_records < 1)
    throw std::invalid_argument("batcher: max_batch_size, workers and max_queue_records must be >= 1");
  for (int w = 0; w < options_.workers; ++w) workers_.emplace_back(&Batcher::work, this, w);
}

Batcher::~Batcher() { stop(); }

Batcher::Arrival Batcher::arrive() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++arriving_;
  return Arrival(this);
}

void Batcher::depart() {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --arriving_;
    wake = collecting_ && arriving_ == 0;
  }
  // A collecting worker may be waiting for this request only.
  if (wake) collect_cv_.notify_one();
}

std::future<nlohmann::json> Batcher::submit(Arrival arrival, std::vector<std::string> records) {
  auto promise = std::make_shared<std::promise<nlohmann::json>>();
  auto future = promise->get_future();
  submit(std::move(arrival), std::move(records), [promise](nlohmann::json rows, std::exception_ptr error) {
    if (error) promise->set_exception(error);
    else promise->set_value(std::move(rows));
  });
  return future;
}

void Batcher::submit(Arrival arrival, std::vector<std::string> records, Done done) {
  Job job;
  job.records = std::move(records);
  job.enqueued = Clock::now();
  job.done = std::move(done);
  bool collecting;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw std::runtime_error("the service is shutting down");
    int64_t n = static_cast<int64_t>(job.records.size());
    // An empty queue takes any request, so one larger than the bound is still served.
    if (!queue_.empty() && queued_records_ + n > options_.max_queue_records)
      throw QueueFull(fmt::format("the service is overloaded ({} records queued, max_queue_records {}); retry shortly",
                                  queued_records_, options_.max_queue_records));
    queued_records_ += n;
    queue_.push_back(std::move(job));
    // The request is queued now: it no longer counts as on its way.
    --arriving_;
    arrival.batcher_ = nullptr;
    collecting = collecting_;
  }
  (collecting ? collect_cv_ : queue_cv_).notify_one();
}

void Batcher::stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    collect_cv_.notify_all();
    for (auto& t : workers_) t.join();
  });
}

int64_t Batcher::queued_records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_records_;
}

int64_t Batcher::queued_requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(queue_.size());
}

void Batcher::work(int worker) {
  if (on_start_) on_start_(worker);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return (!collecting_ && !queue_.empty()) || (stopping_ && queue_.empty()); });
    if (queue_.empty()) return;  // stopping, and everything queued has been taken
    collecting_ = true;
    std::vector<Job> batch;
    int64_t records = 0;
    const auto deadline = queue_.front().enqueued + options_.batch_timeout;
    for (;;) {
      while (!queue_.empty()) {
        int64_t n = static_cast<int64_t>(queue_.front().records.size());
        if (!batch.empty() && records + n > options_.max_batch_size) break;
        records += n;
        queued_records_ -= n;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      bool full = records >= options_.max_batch_size || !queue_.empty();
      if (full || arriving_ == 0 || stopping_ || Clock::now() >= deadline) break;
      collect_cv_.wait_until(lock, deadline, [&] { return !queue_.empty() || arriving_ == 0 || stopping_; });
    }
    collecting_ = false;
    bool more = !queue_.empty();
    lock.unlock();
    if (more) queue_cv_.notify_one();  // another worker may collect what is left while this one runs
    run(worker, batch);
    lock.lock();
  }
}

void Batcher::run(int worker, std::vector<Job>& batch) {
  auto run_one = [&](std::vector<Job*> jobs) {
    std::vector<std::string> records;
    size_t total = 0;
    for (Job* job : jobs) total += job->records.size();
    records.reserve(total);
    for (Job* job : jobs) records.insert(records.end(), job->records.begin(), job->records.end());
    auto start = Clock::now();
    nlohmann::json rows = run_(worker, records);
    if (on_batch_)
      on_batch_(static_cast<int64_t>(total), std::chrono::duration<double>(Clock::now() - start).count());
    if (!rows.is_array() || rows.size() != total)
      throw std::logic_error(fmt::format("a batch of {} records returned {} rows", total, rows.size()));
    size_t at = 0;
    for (Job* job : jobs) {
      nlohmann::json mine = nlohmann::json::array();
      for (size_t i = 0; i < job->records.size(); ++i) mine.push_back(std::move(rows[at++]));
      job->done(std::move(mine), nullptr);
    }
  };
  std::vector<Job*> all;
  for (auto& job : batch) all.push_back(&job);
  try {
    run_one(all);
    return;
  } catch (...) {
    if (all.size() == 1) {
      all[0]->done(nullptr, std::current_exception());
      return;
    }
  }
  // Requests are checked before they are queued, so this is rare: one request the checks
  // missed must not fail the others it was batched with.
  for (Job* job : all) {
    try {
      run_one({job});
    } catch (...) {
      job->done(nullptr, std::current_exception());
    }
  }
}

}  // namespace j2v::serve
