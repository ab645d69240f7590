#pragma once
// A fixed team of threads that run one job together and are joined before the caller goes
// on: the shape of a training step on thread replicas, every step. Starting a thread per
// replica per step cost its creation and, worse, a cold thread each time (thread-local
// allocator arenas and library caches built anew); these threads live as long as the pool.
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace j2v {

class ForkJoinPool {
 public:
  // helpers: threads beside the caller's; a job then runs on up to helpers + 1 threads.
  explicit ForkJoinPool(size_t helpers);
  ~ForkJoinPool();
  ForkJoinPool(const ForkJoinPool&) = delete;
  ForkJoinPool& operator=(const ForkJoinPool&) = delete;

  size_t helpers() const { return threads_.size(); }
  // Runs job(0) on the calling thread and job(1), ..., job(parts - 1) on helpers, and returns
  // when all have; the first exception any part threw is rethrown here. parts <= helpers + 1.
  void run(size_t parts, const std::function<void(size_t)>& job);

 private:
  void serve(size_t index);

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t parts_ = 0;
  size_t generation_ = 0;  // bumped per job: a helper runs each job once
  size_t pending_ = 0;     // helpers' parts still running
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace j2v
