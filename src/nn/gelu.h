#pragma once
// GELU, x * Phi(x) with the exact (erf) Phi, as one vectorised pass each way for float32 on
// the CPU. LibTorch 1.13's CPU kernels take 0.8 ns an element forward and 2.7 backward on
// AVX-512 hosts (erf and exp through a generic vector path, then a separate multiply): the
// feed-forward activations of a nested training step, [items x tokens, 4 d] twice per
// layer, made them an eighth of the step.
#include <torch/torch.h>

namespace j2v::nn {

// The same function as torch::gelu(x) (approximate "none") to within 1e-6 of |x| and its
// gradient to within 1e-6: float32 CPU tensors take json2vec's kernels, any other tensor
// LibTorch's.
torch::Tensor gelu(const torch::Tensor& x);

// The kernels on raw float32 memory, split over LibTorch's threads, for fused callers
// (nn/feed_forward.cc): out[i] = gelu(x[i]), and out[i] = grad[i] * gelu'(x[i]) (out may be
// grad itself), for i < n.
void gelu_floats(const float* x, float* out, int64_t n);
void gelu_backward_floats(const float* grad, const float* x, float* out, int64_t n);
// For `rows` rows of `width`: h[r, i] += bias[i], then out[r, i] = gelu(h[r, i]).
void bias_gelu_floats(float* h, const float* bias, float* out, int64_t rows, int64_t width);

}  // namespace j2v::nn
