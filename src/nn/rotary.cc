#include "nn/rotary.h"

#include <ATen/Parallel.h>

namespace j2v::nn {

namespace {

// [T, dh/2] angle tables in x's type, computed as the operator version computes them.
std::pair<torch::Tensor, torch::Tensor> angle_tables(const torch::Tensor& x, const torch::Tensor& positions) {
  int64_t half = x.size(-1) / 2;
  auto options = x.options().requires_grad(false);
  auto inv_freq = torch::pow(10000.0, -torch::arange(0, half, options) / static_cast<double>(half));
  auto angles = positions.to(x.dtype()).unsqueeze(1) * inv_freq.unsqueeze(0);
  return {angles.cos().contiguous(), angles.sin().contiguous()};
}

// out = R(sign * angle) in: sign +1 rotates (forward), -1 rotates back (the gradient).
template <typename T>
void rotate_rows(const T* in, T* out, const T* cos, const T* sin, int64_t rows, int64_t length, int64_t dh,
                 T sign) {
  int64_t half = dh / 2;
  at::parallel_for(0, rows * length, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* c = cos + (row % length) * half;
      const T* s = sin + (row % length) * half;
      const T* x = in + row * dh;
      T* y = out + row * dh;
      for (int64_t i = 0; i < half; ++i) {
        T x1 = x[i], x2 = x[half + i], si = sign * s[i];
        y[i] = x1 * c[i] - x2 * si;
        y[half + i] = x1 * si + x2 * c[i];
      }
      if (dh % 2) y[dh - 1] = x[dh - 1];
    }
  });
}

torch::Tensor rotate_by_tables(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, double sign) {
  auto input = x.contiguous();
  auto out = torch::empty_like(input);
  int64_t dh = input.size(-1), length = input.size(-2);
  int64_t rows = length * dh == 0 ? 0 : input.numel() / (length * dh);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "rotate", [&] {
    rotate_rows<scalar_t>(input.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), cos.data_ptr<scalar_t>(),
                          sin.data_ptr<scalar_t>(), rows, length, dh, static_cast<scalar_t>(sign));
  });
  return out;
}

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& positions) {
    auto [cos, sin] = angle_tables(x, positions);
    ctx->save_for_backward({cos, sin});
    return rotate_by_tables(x, cos, sin, 1.0);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    return {rotate_by_tables(grads[0], saved[0], saved[1], -1.0), torch::Tensor()};
  }
};

// The same rotation in LibTorch operators: other devices and types.
torch::Tensor rotate_with_operators(const torch::Tensor& x, const torch::Tensor& positions) {
  int64_t dh = x.size(-1), half = dh / 2;
  auto [cos, sin] = angle_tables(x, positions);
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  return dh % 2 ? torch::cat({rotated, x.narrow(-1, 2 * half, 1)}, -1) : rotated;
}

}  // namespace

torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& positions) {
  TORCH_CHECK(x.dim() >= 2 && positions.dim() == 1 && positions.size(0) == x.size(-2),
              "rotate: positions must hold one entry per token, got ", positions.sizes(), " for ", x.sizes());
  auto type = x.scalar_type();
  if (x.device().is_cpu() && (type == torch::kFloat32 || type == torch::kFloat64))
    return RotaryFunction::apply(x, positions);
  return rotate_with_operators(x, positions);
}

}  // namespace j2v::nn
