#pragma once
// The "simple" profiler (after Lightning's SimpleProfiler): wall time per action (hook,
// step, data fetch), summed over a run (and over threads, for a strategy's replicas).
// Disabled, a scope costs one branch.
#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace j2v::engine {

class Profiler {
 public:
  struct Stat {
    int64_t calls = 0;
    double seconds = 0;
  };
  class Scope {
   public:
    Scope(Profiler* profiler, const char* action)
        : profiler_(profiler), action_(action), start_(profiler ? std::chrono::steady_clock::now()
                                                                : std::chrono::steady_clock::time_point{}) {}
    ~Scope() {
      if (profiler_)
        profiler_->record(action_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Profiler* profiler_;
    const char* action_;
    std::chrono::steady_clock::time_point start_;
  };

  explicit Profiler(bool enabled = false) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  Scope scope(const char* action) { return Scope(enabled_ ? this : nullptr, action); }
  void record(const std::string& action, double seconds);
  const std::map<std::string, Stat>& stats() const { return stats_; }
  // One line per action, slowest total first, with calls, mean and share of the run.
  std::string report(double run_seconds) const;

 private:
  bool enabled_;
  std::mutex mutex_;  // replicas time their steps on their own threads
  std::map<std::string, Stat> stats_;
};

}  // namespace j2v::engine
