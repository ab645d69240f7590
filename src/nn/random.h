#pragma once
// The generator for training-time draws on the calling thread: LibTorch's default one, or,
// inside a ThreadSeedScope (base/thread_seed.h: a replica's thread), this thread's own,
// seeded from the scope. Draws that go through it repeat run after run however the replica
// threads interleave.
#include <ATen/core/Generator.h>

#include <cstdint>

namespace j2v::nn {

at::Generator thread_generator();

// A uniformly random 64-bit value from thread_generator().
uint64_t thread_random64();

}  // namespace j2v::nn
