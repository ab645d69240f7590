#include "nn/gelu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "nn/vector_math.h"

namespace j2v::nn {

namespace {

// Sixteen floats as one value: one AVX-512 register, two AVX2 ones (nn/vector_math.h).
typedef float Floats __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

J2V_ALWAYS_INLINE inline Floats splat(float v) { return simd::splat<Floats>(v); }
J2V_ALWAYS_INLINE inline Floats load(const float* p) { return simd::load<Floats>(p); }
J2V_ALWAYS_INLINE inline void store(float* p, Floats v) { simd::store(p, v); }
J2V_ALWAYS_INLINE inline Floats erf_of(Floats x) { return simd::erf_of(x); }
J2V_ALWAYS_INLINE inline Floats exp_of_nonpositive(Floats t) { return simd::exp_of_nonpositive(t); }

constexpr float kInverseSqrt2 = 0.70710678118654752f;
constexpr float kInverseSqrt2Pi = 0.39894228040143268f;

// Phi(x), the standard normal distribution function.
J2V_ALWAYS_INLINE inline Floats normal_cdf(Floats x) { return splat(0.5f) + splat(0.5f) * erf_of(x * splat(kInverseSqrt2)); }

J2V_ALWAYS_INLINE inline Floats gelu_of(Floats x) { return x * normal_cdf(x); }

// d/dx x Phi(x) = Phi(x) + x phi(x).
J2V_ALWAYS_INLINE inline Floats gelu_slope(Floats x) {
  return normal_cdf(x) + x * splat(kInverseSqrt2Pi) * exp_of_nonpositive(splat(-0.5f) * x * x);
}

// Whole vectors, then the tail through a zero-padded block. (Plain loops: a lambda's body
// would be a function of its own, compiled for the baseline target, not the clone's.)
J2V_VECTOR_CLONES void gelu_span(const float* x, float* out, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) store(out + i, gelu_of(load(x + i)));
  if (i == end) return;
  alignas(64) float block[kLanes] = {};
  std::memcpy(block, x + i, (end - i) * sizeof(float));
  store(block, gelu_of(load(block)));
  std::memcpy(out + i, block, (end - i) * sizeof(float));
}

J2V_VECTOR_CLONES void gelu_backward_span(const float* grad, const float* x, float* out, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) store(out + i, load(grad + i) * gelu_slope(load(x + i)));
  if (i == end) return;
  alignas(64) float grads[kLanes] = {}, xs[kLanes] = {};
  std::memcpy(grads, grad + i, (end - i) * sizeof(float));
  std::memcpy(xs, x + i, (end - i) * sizeof(float));
  store(grads, load(grads) * gelu_slope(load(xs)));
  std::memcpy(out + i, grads, (end - i) * sizeof(float));
}

J2V_VECTOR_CLONES void bias_gelu_span(float* h, const float* bias, float* out, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) {
    float* h_row = h + r * width;
    float* out_row = out + r * width;
    int64_t i = 0;
    for (; i + kLanes <= width; i += kLanes) {
      Floats v = load(h_row + i) + load(bias + i);
      store(h_row + i, v);
      store(out_row + i, gelu_of(v));
    }
    if (i == width) continue;
    alignas(64) float block[kLanes] = {}, biases[kLanes] = {};
    std::memcpy(block, h_row + i, (width - i) * sizeof(float));
    std::memcpy(biases, bias + i, (width - i) * sizeof(float));
    Floats v = load(block) + load(biases);
    store(block, v);
    std::memcpy(h_row + i, block, (width - i) * sizeof(float));
    store(block, gelu_of(v));
    std::memcpy(out_row + i, block, (width - i) * sizeof(float));
  }
}

torch::Tensor gelu_forward(const torch::Tensor& x) {
  auto out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
  gelu_floats(x.data_ptr<float>(), out.data_ptr<float>(), x.numel());
  return out;
}

class GeluFunction : public torch::autograd::Function<GeluFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return gelu_forward(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto x = ctx->get_saved_variables()[0];
    auto grad = grads[0].contiguous();
    auto out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
    gelu_backward_floats(grad.data_ptr<float>(), x.data_ptr<float>(), out.data_ptr<float>(), x.numel());
    return {out};
  }
};

}  // namespace

// Elements per task: enough that a task outweighs waking a thread.
constexpr int64_t kGrain = 32768;

void gelu_floats(const float* x, float* out, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { gelu_span(x, out, begin, end); });
}

void gelu_backward_floats(const float* grad, const float* x, float* out, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { gelu_backward_span(grad, x, out, begin, end); });
}

void bias_gelu_floats(float* h, const float* bias, float* out, int64_t rows, int64_t width) {
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / width), [&](int64_t begin, int64_t end) {
    bias_gelu_span(h + begin * width, bias, out + begin * width, end - begin, width);
  });
}

torch::Tensor gelu(const torch::Tensor& x) {
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32) return torch::gelu(x);
  auto dense = x.contiguous();
  if (torch::GradMode::is_enabled() && x.requires_grad()) return GeluFunction::apply(dense);
  return gelu_forward(dense);
}

}  // namespace j2v::nn
