#include "nn/random.h"

#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "base/thread_seed.h"
#include "nn/counter_dropout.h"

namespace j2v::nn {

at::Generator thread_generator() {
  auto seed = thread_seed();
  if (!seed) return at::detail::getDefaultCPUGenerator();
  thread_local at::Generator own;
  thread_local uint64_t seeded_for = 0;
  if (!own.defined()) own = at::detail::createCPUGenerator(seed->seed);
  if (seeded_for != seed->scope_id) {
    own.set_current_seed(seed->seed);
    seeded_for = seed->scope_id;
  }
  return own;
}

uint64_t thread_random64() {
  auto generator = thread_generator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get<at::CPUGeneratorImpl>()->random64();
}

CounterDropout CounterDropout::draw(double p) { return replay(thread_random64(), p); }

}  // namespace j2v::nn
