#pragma once
// residual + dropout(branch) as one kernel each way. LibTorch's CPU dropout draws each
// element's Bernoulli sample from a 64-bit Mersenne Twister behind a lock (about 12 ns an
// element: a tenth of a nested training step), then multiplies and adds in separate passes.
// Here the keep decisions come from a counter-based hash of (seed, element): cheap, the same
// for any thread count, and recomputed in the backward pass instead of stored. The seed is
// one draw from the thread's generator (nn/random.h: LibTorch's default one, or a thread
// replica's own seeded from it), so torch::manual_seed still fixes every mask.
#include <torch/torch.h>

namespace j2v::nn {

// residual + branch * keep / (1 - p), keep ~ Bernoulli(1 - p) per element, while training;
// residual + branch otherwise. Both operands have the same shape.
torch::Tensor residual_dropout(const torch::Tensor& residual, const torch::Tensor& branch, double p, bool training);

// x * keep / (1 - p) with keep ~ Bernoulli(1 - p) drawn from the thread's generator
// (torch::dropout draws from the process's default generator on any thread).
torch::Tensor dropout_with_thread_generator(const torch::Tensor& x, double p);

}  // namespace j2v::nn
