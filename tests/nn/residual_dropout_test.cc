// The fused residual dropout: the drop rate asked for, survivors scaled, the gradient through
// the same mask, masks fixed by torch::manual_seed and fresh on every call.
#include <gtest/gtest.h>

#include <limits>

#include "nn/residual_dropout.h"

namespace j2v::nn {
namespace {

TEST(ResidualDropout, DropsTheAskedShareAndScalesTheRest) {
  auto residual = torch::randn({300, 7, 64});
  auto branch = torch::ones({300, 7, 64});
  torch::manual_seed(1);
  auto out = residual_dropout(residual, branch, 0.25, true) - residual;
  auto kept = out.abs() > 0.5;
  double kept_share = kept.to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(kept_share, 0.75, 0.005);
  EXPECT_TRUE(torch::allclose(out.masked_select(kept), torch::full({kept.sum().item<int64_t>()}, 1 / 0.75), 1e-5));
  EXPECT_LT(out.masked_select(kept.logical_not()).abs().max().item<double>(), 1e-5);
  // No position is dropped more often than chance allows: no stripes from the 4-per-hash packing.
  auto by_position = kept.to(torch::kFloat64).mean(0);
  EXPECT_GT(by_position.min().item<double>(), 0.6);
  EXPECT_LT(by_position.max().item<double>(), 0.9);
}

TEST(ResidualDropout, SeedFixesTheMaskAndEachCallDrawsAnew) {
  auto residual = torch::zeros({1000}), branch = torch::ones({1000});
  torch::manual_seed(7);
  auto first = residual_dropout(residual, branch, 0.5, true);
  auto second = residual_dropout(residual, branch, 0.5, true);
  torch::manual_seed(7);
  auto replay = residual_dropout(residual, branch, 0.5, true);
  EXPECT_TRUE(torch::equal(first, replay));
  EXPECT_FALSE(torch::equal(first, second));
}

TEST(ResidualDropout, GradientFlowsThroughTheSameMask) {
  auto residual = torch::randn({50, 33}, torch::kFloat64).requires_grad_();
  auto branch = torch::randn({50, 33}, torch::kFloat64).requires_grad_();
  auto out = residual_dropout(residual, branch, 0.3, true);
  auto upstream = torch::randn({50, 33}, torch::kFloat64);
  (out * upstream).sum().backward();
  EXPECT_TRUE(torch::equal(residual.grad(), upstream));
  // Where the branch survived, d out / d branch = 1 / (1 - p); where it was dropped, 0.
  auto factor = (out - residual).detach() / branch.detach();
  EXPECT_TRUE(torch::allclose(branch.grad(), upstream * factor, 1e-12, 1e-12));
  auto share_kept = (factor > 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(share_kept, 0.7, 0.06);
}

// Lengths that end inside a 4-element hash and inside a 512-element block, in both float
// types: every element is either dropped to exactly the residual or kept and scaled, and a
// dropped infinity leaves nothing behind (as PyTorch's dropout would not: inf * 0 is NaN).
TEST(ResidualDropout, EveryLengthAndTypeKeepsOrDropsEachElementWhole) {
  for (auto type : {torch::kFloat32, torch::kFloat64}) {
    for (int64_t n : {1, 3, 5, 511, 513, 1031, 20001}) {
      auto residual = torch::randn({n}, type);
      auto branch = torch::full({n}, std::numeric_limits<double>::infinity(), type);
      branch.index_put_({torch::indexing::Slice(0, torch::indexing::None, 2)}, 2.0);
      auto out = residual_dropout(residual, branch, 0.4, true);
      auto dropped = out == residual;
      auto kept_finite = (out - residual - 2.0 / 0.6).abs() < 1e-4;
      auto kept_infinite = out.isinf();
      EXPECT_TRUE((dropped | kept_finite | kept_infinite).all().item<bool>()) << n << " " << type;
      EXPECT_FALSE(out.isnan().any().item<bool>()) << n << " " << type;
      if (n >= 1031) EXPECT_NEAR(dropped.to(torch::kFloat64).mean().item<double>(), 0.4, 0.05) << n;
      // The backward pass replays the forward's mask at every length.
      auto r = torch::zeros({n}, type).requires_grad_(), b = torch::ones({n}, type).requires_grad_();
      torch::manual_seed(n);
      auto forward = residual_dropout(r, b, 0.4, true);
      forward.sum().backward();
      EXPECT_TRUE(torch::equal(b.grad(), forward.detach())) << n << " " << type;
    }
  }
}

TEST(ResidualDropout, IsThePlainSumOutsideTraining) {
  auto residual = torch::randn({4, 5}), branch = torch::randn({4, 5});
  EXPECT_TRUE(torch::equal(residual_dropout(residual, branch, 0.5, false), residual + branch));
  EXPECT_TRUE(torch::equal(residual_dropout(residual, branch, 0.0, true), residual + branch));
  EXPECT_THROW(residual_dropout(residual, branch, 1.0, true), c10::Error);
}

}  // namespace
}  // namespace j2v::nn
