// GELU's own float32 kernels against the exact formula (computed in float64), in value and
// gradient, over every length (whole vectors and tails) and for strided inputs.
#include <gtest/gtest.h>

#include "nn/gelu.h"

namespace j2v::nn {
namespace {

// x Phi(x) and its slope Phi(x) + x phi(x), in float64.
torch::Tensor exact_gelu(const torch::Tensor& x) {
  auto d = x.to(torch::kFloat64);
  return d * 0.5 * (1 + torch::erf(d / std::sqrt(2.0)));
}
torch::Tensor exact_slope(const torch::Tensor& x) {
  auto d = x.to(torch::kFloat64);
  return 0.5 * (1 + torch::erf(d / std::sqrt(2.0))) + d * torch::exp(-0.5 * d * d) / std::sqrt(2 * M_PI);
}

// Largest |a - b| / max(1, |x|).
double worst_error(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& x) {
  auto scale = x.to(torch::kFloat64).abs().clamp_min(1);
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs() / scale).max().item<double>();
}

TEST(Gelu, Float32MatchesTheExactFunctionAndItsSlopeEverywhere) {
  // Dense over the range where the function bends, out to where Phi is 0 or 1 in float32.
  auto x = torch::linspace(-30, 30, 600001, torch::kFloat32).requires_grad_();
  auto y = nn::gelu(x);
  EXPECT_LT(worst_error(y, exact_gelu(x.detach()), x.detach()), 1e-6);
  auto upstream = torch::rand(x.sizes(), torch::kFloat32) + 0.5;
  auto grad = torch::autograd::grad({y}, {x}, {upstream})[0];
  EXPECT_LT(worst_error(grad, upstream.to(torch::kFloat64) * exact_slope(x.detach()), x.detach()), 1e-6);
  // And LibTorch's own GELU agrees within the same bound.
  EXPECT_LT(worst_error(y, torch::gelu(x.detach()), x.detach()), 1e-6);
}

TEST(Gelu, EveryLengthAndStridedInputsGiveTheSameElementwiseResult) {
  torch::manual_seed(5);
  for (int64_t n : {1, 7, 15, 16, 17, 31, 33, 100, 70001}) {
    auto x = (torch::randn({n}) * 3).requires_grad_();
    auto y = nn::gelu(x);
    EXPECT_LT(worst_error(y, exact_gelu(x.detach()), x.detach()), 1e-6) << n;
    auto grad = torch::autograd::grad({y.sum()}, {x})[0];
    EXPECT_LT(worst_error(grad, exact_slope(x.detach()), x.detach()), 1e-6) << n;
  }
  // A transposed view: the result keeps the view's shape and elements.
  auto base = torch::randn({9, 5});
  auto view = base.t();
  auto y = nn::gelu(view);
  EXPECT_EQ(y.sizes(), view.sizes());
  EXPECT_LT(worst_error(y, exact_gelu(view), view), 1e-6);
}

TEST(Gelu, NonFiniteInputsFollowTheFormulaAndOtherTypesUseLibTorch) {
  auto x = torch::tensor({std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 0.0f});
  auto y = nn::gelu(x);
  EXPECT_TRUE(std::isinf(y[0].item<float>()) && y[0].item<float>() > 0);
  EXPECT_TRUE(std::isnan(y[1].item<float>()));
  EXPECT_EQ(y[2].item<float>(), 0.0f);
  // float64 (gradcheck, reference checks) is LibTorch's GELU, bit for bit.
  auto d = torch::randn({1000}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(nn::gelu(d), torch::gelu(d)));
}

}  // namespace
}  // namespace j2v::nn
