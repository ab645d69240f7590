// The fused residual dropout: the drop rate asked for, survivors scaled, the gradient through
// the same mask, masks fixed by torch::manual_seed and fresh on every call.
#include <gtest/gtest.h>

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

TEST(ResidualDropout, IsThePlainSumOutsideTraining) {
  auto residual = torch::randn({4, 5}), branch = torch::randn({4, 5});
  EXPECT_TRUE(torch::equal(residual_dropout(residual, branch, 0.5, false), residual + branch));
  EXPECT_TRUE(torch::equal(residual_dropout(residual, branch, 0.0, true), residual + branch));
  EXPECT_THROW(residual_dropout(residual, branch, 1.0, true), c10::Error);
}

}  // namespace
}  // namespace j2v::nn
