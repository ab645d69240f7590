// The chunked feed-forward against out(gelu(in(x))) written in LibTorch's operators in
// float64: values and the gradients of all five inputs, for row counts below, at and across
// chunk boundaries.
#include <gtest/gtest.h>

#include "nn/feed_forward.h"

namespace j2v::nn {
namespace {

struct Inputs {
  torch::Tensor x, w1, b1, w2, b2;
  std::vector<torch::Tensor> all() const { return {x, w1, b1, w2, b2}; }
};

Inputs random_inputs(std::vector<int64_t> x_shape, int64_t d_in, int64_t hidden, int64_t d_out) {
  x_shape.push_back(d_in);
  return {torch::randn(x_shape).requires_grad_(), (torch::randn({hidden, d_in}) * 0.3).requires_grad_(),
          torch::randn({hidden}).requires_grad_(), (torch::randn({d_out, hidden}) * 0.1).requires_grad_(),
          torch::randn({d_out}).requires_grad_()};
}

torch::Tensor reference(const Inputs& in) {
  namespace F = torch::nn::functional;
  return F::linear(torch::gelu(F::linear(in.x, in.w1, in.b1)), in.w2, in.b2);
}

Inputs in_float64(const Inputs& in) {
  auto d = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64).requires_grad_(); };
  return {d(in.x), d(in.w1), d(in.b1), d(in.w2), d(in.b2)};
}

// Largest |a - b| relative to b's largest magnitude.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  auto b64 = b.to(torch::kFloat64);
  return (a.to(torch::kFloat64) - b64).abs().max().item<double>() / std::max(1e-30, b64.abs().max().item<double>());
}

TEST(FeedForward, Float32ChunksMatchTheOperatorsInValueAndEveryGradient) {
  torch::manual_seed(11);
  // hidden 256: chunks of 1,024 rows. Rows: one, below a chunk, exactly one, several and a
  // tail; then a hidden width that is no multiple of the kernels' 16-float vectors.
  for (auto [rows, hidden] : std::vector<std::pair<int64_t, int64_t>>{{1, 256}, {100, 256}, {1024, 256}, {2500, 256}, {77, 20}}) {
    auto in = random_inputs({rows}, 64, hidden, 48);
    auto exact = in_float64(in);
    auto y = feed_forward(in.x, in.w1, in.b1, in.w2, in.b2);
    auto y_exact = reference(exact);
    EXPECT_LT(relative_error(y, y_exact), 1e-5) << rows;
    auto upstream = torch::randn(y.sizes());
    auto grads = torch::autograd::grad({y}, in.all(), {upstream});
    auto grads_exact = torch::autograd::grad({y_exact}, exact.all(), {upstream.to(torch::kFloat64)});
    const char* names[] = {"x", "w1", "b1", "w2", "b2"};
    for (size_t i = 0; i < grads.size(); ++i)
      EXPECT_LT(relative_error(grads[i], grads_exact[i]), 1e-5) << rows << " rows, gradient of " << names[i];
  }
}

TEST(FeedForward, KeepsLeadingDimensionsAndStridedInputsAndNeedsNoGraph) {
  torch::manual_seed(12);
  auto in = random_inputs({6, 9}, 16, 64, 16);
  auto transposed = in.x.transpose(0, 1);  // [9, 6, 16], not contiguous
  auto y = feed_forward(transposed, in.w1, in.b1, in.w2, in.b2);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{9, 6, 16}));
  auto exact = in_float64(in);
  EXPECT_LT(relative_error(y, reference(exact).transpose(0, 1)), 1e-5);
  // Without a graph (prediction): the same values.
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_error(feed_forward(transposed, in.w1, in.b1, in.w2, in.b2), y.detach()), 1e-6);
}

TEST(FeedForward, Float64IsLibTorchsOwnOperators) {
  torch::manual_seed(13);
  auto in = in_float64(random_inputs({5}, 8, 32, 8));
  EXPECT_TRUE(torch::equal(feed_forward(in.x, in.w1, in.b1, in.w2, in.b2), reference(in)));
}

}  // namespace
}  // namespace j2v::nn
