#include "nn/feed_forward.h"

#include <algorithm>

#include "nn/gelu.h"

namespace j2v::nn {

namespace {

// Rows per chunk: a [rows, hidden] float block of 1 MB (1,024 rows at hidden 256). Smaller
// chunks keep the activations in L2 but make the weight-gradient GEMMs thin (few rows to
// sum over): at [14000, 64] -> 256, one thread, forward + backward took 38.9 ms in chunks
// of 1 MB, 41.4 ms in chunks of 64 KB and 39.0-41.8 ms in LibTorch's operators.
int64_t chunk_rows(int64_t hidden) { return std::max<int64_t>(16, (1024 * 1024 / 4) / std::max<int64_t>(1, hidden)); }

// out = [x's rows] -> gelu(x W1^T + b1) W2^T + b2. hidden, when defined, receives the
// pre-activations [N, hidden] (for backward); otherwise only one chunk of them exists.
void forward_rows(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& b1, const torch::Tensor& w2,
                  const torch::Tensor& b2, torch::Tensor& out, torch::Tensor* hidden) {
  const int64_t N = x.size(0), H = w1.size(0), C = chunk_rows(H);
  auto scratch = torch::empty({std::min(C, N), H}, x.options());
  auto pre = hidden ? torch::Tensor() : torch::empty({std::min(C, N), H}, x.options());
  auto w1t = w1.t(), w2t = w2.t();
  for (int64_t r = 0; r < N; r += C) {
    int64_t c = std::min(C, N - r);
    auto h = hidden ? hidden->narrow(0, r, c) : pre.narrow(0, 0, c);
    at::mm_out(h, x.narrow(0, r, c), w1t);
    auto a = scratch.narrow(0, 0, c);
    bias_gelu_floats(h.data_ptr<float>(), b1.data_ptr<float>(), a.data_ptr<float>(), c, H);
    auto y = out.narrow(0, r, c);
    at::addmm_out(y, b2, a, w2t);
  }
}

class FeedForwardFunction : public torch::autograd::Function<FeedForwardFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w1,
                               const torch::Tensor& b1, const torch::Tensor& w2, const torch::Tensor& b2) {
    auto out = torch::empty({x.size(0), w2.size(0)}, x.options());
    auto hidden = torch::empty({x.size(0), w1.size(0)}, x.options());
    forward_rows(x, w1, b1, w2, b2, out, &hidden);
    ctx->save_for_backward({x, w1, w2, hidden});
    return out;
  }

  // Per chunk: a = gelu(h) again (cheaper than storing it), dW2 += dy^T a, dh = (dy W2) *
  // gelu'(h), db1 += sum dh, dW1 += dh^T x, dx = dh W1.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w1 = saved[1], &w2 = saved[2], &hidden = saved[3];
    auto dy = grads[0].contiguous();
    const int64_t N = x.size(0), H = w1.size(0), C = chunk_rows(H);
    auto dx = torch::empty_like(x);
    auto dw1 = torch::zeros_like(w1), dw2 = torch::zeros_like(w2), db1 = torch::zeros({H}, x.options());
    auto db2 = dy.sum(0);
    auto activations = torch::empty({std::min(C, N), H}, x.options());
    auto d_hidden = torch::empty({std::min(C, N), H}, x.options());
    auto ones = torch::ones({std::min(C, N)}, x.options());
    for (int64_t r = 0; r < N; r += C) {
      int64_t c = std::min(C, N - r);
      auto h = hidden.narrow(0, r, c), dy_c = dy.narrow(0, r, c), x_c = x.narrow(0, r, c);
      auto a = activations.narrow(0, 0, c);
      gelu_floats(h.data_ptr<float>(), a.data_ptr<float>(), c * H);
      dw2.addmm_(dy_c.t(), a);
      auto dh = d_hidden.narrow(0, 0, c);
      at::mm_out(dh, dy_c, w2);
      gelu_backward_floats(dh.data_ptr<float>(), h.data_ptr<float>(), dh.data_ptr<float>(), c * H);
      db1.addmv_(dh.t(), ones.narrow(0, 0, c));  // one GEMV, not a reduction and an add
      dw1.addmm_(dh.t(), x_c);
      auto dx_c = dx.narrow(0, r, c);
      at::mm_out(dx_c, dh, w1);
    }
    return {dx, dw1, db1, dw2, db2};
  }
};

}  // namespace

torch::Tensor feed_forward(const torch::Tensor& x, const torch::Tensor& in_weight, const torch::Tensor& in_bias,
                           const torch::Tensor& out_weight, const torch::Tensor& out_bias) {
  bool fused = x.device().is_cpu() && x.numel() > 0;
  for (const auto* t : {&x, &in_weight, &in_bias, &out_weight, &out_bias})
    fused = fused && t->defined() && t->scalar_type() == torch::kFloat32 && t->device().is_cpu();
  if (!fused)
    return torch::nn::functional::linear(nn::gelu(torch::nn::functional::linear(x, in_weight, in_bias)), out_weight,
                                         out_bias);
  auto sizes = x.sizes().vec();
  auto rows = x.reshape({-1, x.size(-1)}).contiguous();
  auto w1 = in_weight.contiguous(), w2 = out_weight.contiguous();
  torch::Tensor out;
  bool records = torch::GradMode::is_enabled() && (x.requires_grad() || in_weight.requires_grad() ||
                                                    in_bias.requires_grad() || out_weight.requires_grad() ||
                                                    out_bias.requires_grad());
  if (records) {
    out = FeedForwardFunction::apply(rows, w1, in_bias, w2, out_bias);
  } else {
    out = torch::empty({rows.size(0), w2.size(0)}, rows.options());
    forward_rows(rows, w1, in_bias, w2, out_bias, out, nullptr);
  }
  sizes.back() = w2.size(0);
  return out.view(sizes);
}

}  // namespace j2v::nn
