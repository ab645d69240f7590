#include "base/thread_seed.h"

#include <atomic>

namespace j2v {

namespace {
std::optional<ThreadSeed>& current() {
  thread_local std::optional<ThreadSeed> seed;
  return seed;
}
std::atomic<uint64_t> scopes_opened{0};
}  // namespace

std::optional<ThreadSeed> thread_seed() { return current(); }

ThreadSeedScope::ThreadSeedScope(uint64_t seed) : previous_(current()) {
  current() = ThreadSeed{seed, ++scopes_opened};
}

ThreadSeedScope::~ThreadSeedScope() { current() = previous_; }

}  // namespace j2v
