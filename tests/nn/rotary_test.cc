// Rotary position embedding: the fused rotation against the formula written in operators,
// its gradient, and the property attention relies on (scores depend on relative position).
#include <gtest/gtest.h>

#include "nn/rotary.h"

namespace j2v::nn {
namespace {

// RoFormer's rotation, written out: pairs (i, i + half) turned by position * 10000^(-i/half).
torch::Tensor formula(const torch::Tensor& x, const torch::Tensor& positions) {
  int64_t dh = x.size(-1), half = dh / 2;
  auto i = torch::arange(0, half, torch::kFloat64);
  auto angles = positions.to(torch::kFloat64).unsqueeze(1) * torch::pow(10000.0, -i / static_cast<double>(half));
  auto cos = angles.cos().to(x.dtype()), sin = angles.sin().to(x.dtype());
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto out = torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  return dh % 2 ? torch::cat({out, x.narrow(-1, dh - 1, 1)}, -1) : out;
}

TEST(Rotary, MatchesTheFormulaAndItsGradientForEveryHeadWidthAndLayout) {
  torch::manual_seed(3);
  for (auto type : {torch::kFloat32, torch::kFloat64}) {
    for (int64_t dh : {2, 5, 8, 16}) {
      // A transposed view, as attention passes its heads: [B, h, T, dh] over [B, T, h, dh].
      auto base = torch::randn({3, 7, 2, dh}, type);
      auto x = base.transpose(1, 2).requires_grad_();
      auto positions = torch::arange(7, torch::kLong) * 3;
      auto fused = rotate(x, positions);
      double tolerance = type == torch::kFloat32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(torch::allclose(fused, formula(x.detach(), positions), tolerance, tolerance)) << dh << " " << type;
      auto upstream = torch::randn(fused.sizes(), type);
      auto grad_fused = torch::autograd::grad({fused}, {x}, {upstream})[0];
      auto y = x.detach().clone().requires_grad_();
      auto grad_formula = torch::autograd::grad({formula(y, positions)}, {y}, {upstream})[0];
      EXPECT_TRUE(torch::allclose(grad_fused, grad_formula, tolerance, tolerance)) << dh << " " << type;
    }
  }
}

TEST(Rotary, ScoresDependOnRelativePositionOnly) {
  torch::manual_seed(4);
  auto q = torch::randn({1, 1, 1, 16}, torch::kFloat64), k = torch::randn({1, 1, 1, 16}, torch::kFloat64);
  auto score = [&](int64_t pq, int64_t pk) {
    auto a = rotate(q, torch::tensor({pq}, torch::kLong)), b = rotate(k, torch::tensor({pk}, torch::kLong));
    return (a * b).sum().item<double>();
  };
  EXPECT_NEAR(score(3, 1), score(13, 11), 1e-9);
  EXPECT_NEAR(score(0, 7), score(20, 27), 1e-9);
  EXPECT_GT(std::abs(score(3, 1) - score(3, 2)), 1e-6);  // and does depend on it
  EXPECT_THROW(rotate(q, torch::tensor({1, 2}, torch::kLong)), c10::Error);
}

}  // namespace
}  // namespace j2v::nn
