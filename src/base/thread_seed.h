#pragma once
// A seed for the random draws made on this thread. LibTorch's default generator is one per
// process: model replicas stepping on several threads at once would take their draws
// (dropout, masking) from it in whatever order the threads happen to run, and a run could
// not be repeated. Whoever runs replicas on threads opens a scope with a seed of its own on
// each (drawn on the main thread from the default generator, so torch::manual_seed still
// fixes everything); nn::thread_generator() then draws from a generator with that seed.
#include <cstdint>
#include <optional>

namespace j2v {

struct ThreadSeed {
  uint64_t seed;
  uint64_t scope_id;  // unique per scope opened in the process: a new scope restarts the stream
};

// The innermost open scope's seed on this thread, or nullopt.
std::optional<ThreadSeed> thread_seed();

class ThreadSeedScope {
 public:
  explicit ThreadSeedScope(uint64_t seed);
  ~ThreadSeedScope();
  ThreadSeedScope(const ThreadSeedScope&) = delete;
  ThreadSeedScope& operator=(const ThreadSeedScope&) = delete;

 private:
  std::optional<ThreadSeed> previous_;
};

}  // namespace j2v
