// The fused Adam and AdamW steps against LibTorch's: the same trajectory over many steps,
// with and without weight decay, groups that differ, parameters it cannot fuse, and state that
// moves between the two through a checkpoint.
#include <gtest/gtest.h>

#include <sstream>

#include "engine/optimizers/fused_adam.h"

namespace j2v::engine {
namespace {

struct Params {
  torch::Tensor matrix, bias, embedding;
  std::vector<torch::Tensor> all() const { return {matrix, bias, embedding}; }
};

Params make_params(uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({17, 33}).requires_grad_(), torch::randn({33}).requires_grad_(),
          torch::randn({5, 8}).requires_grad_()};
}

// Two groups: decay on the matrix and embedding, none on the bias (as json2vec groups them).
template <typename Optimizer, typename Options>
std::unique_ptr<Optimizer> make(const Params& p, double weight_decay) {
  auto decayed = std::make_unique<Options>(Options(3e-3).weight_decay(weight_decay).betas({0.9, 0.99}));
  auto plain = std::make_unique<Options>(Options(3e-3).weight_decay(0.0).betas({0.9, 0.99}));
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{p.matrix, p.embedding}, std::move(decayed));
  groups.emplace_back(std::vector<torch::Tensor>{p.bias}, std::move(plain));
  return std::make_unique<Optimizer>(std::move(groups), Options(3e-3));
}

// Gradients from a fixed quadratic loss, so both optimizers see the same ones at the same weights.
void fill_gradients(const Params& p, int step) {
  for (auto& t : p.all()) {
    if (t.grad().defined()) t.mutable_grad().zero_();
  }
  auto loss = (p.matrix * p.matrix).sum() * 0.5 + (p.bias - 1).pow(2).sum() +
              (p.embedding * (step % 3 == 0 ? 0.0 : 1.0)).sum() + p.matrix.sum(0).dot(p.bias);
  loss.backward();
}

template <typename Fused, typename Reference, typename Options>
void expect_same_trajectory(double weight_decay) {
  auto fused_params = make_params(3), reference_params = make_params(3);
  auto fused = make<Fused, Options>(fused_params, weight_decay);
  auto reference = make<Reference, Options>(reference_params, weight_decay);
  for (int step = 0; step < 200; ++step) {
    fill_gradients(fused_params, step);
    fill_gradients(reference_params, step);
    fused->step();
    reference->step();
  }
  for (size_t i = 0; i < 3; ++i) {
    auto a = fused_params.all()[i], b = reference_params.all()[i];
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << "parameter " << i << " differs by "
                                                    << (a - b).abs().max().item<double>();
    EXPECT_FALSE(torch::equal(a, make_params(3).all()[i])) << "parameter " << i << " never moved";
  }
}

TEST(FusedAdam, AdamWFollowsLibTorchsAdamW) {
  expect_same_trajectory<FusedAdamW, torch::optim::AdamW, torch::optim::AdamWOptions>(0.05);
}

TEST(FusedAdam, AdamFollowsLibTorchsAdamWithL2Decay) {
  expect_same_trajectory<FusedAdam, torch::optim::Adam, torch::optim::AdamOptions>(0.05);
  expect_same_trajectory<FusedAdam, torch::optim::Adam, torch::optim::AdamOptions>(0.0);
}

TEST(FusedAdam, ParametersItCannotFuseTakeLibTorchsPath) {
  // A transposed (non-contiguous) parameter and a float64 one.
  torch::manual_seed(5);
  auto base = torch::randn({6, 4});
  auto transposed = base.t().requires_grad_();
  auto wide = torch::randn({7}, torch::kFloat64).requires_grad_();
  auto reference_t = transposed.detach().clone().requires_grad_();
  auto reference_w = wide.detach().clone().requires_grad_();
  FusedAdamW fused({transposed, wide}, torch::optim::AdamWOptions(1e-2));
  torch::optim::AdamW reference({reference_t, reference_w}, torch::optim::AdamWOptions(1e-2));
  for (int step = 0; step < 20; ++step) {
    for (auto* pair : {&transposed, &reference_t}) {
      if (pair->grad().defined()) pair->mutable_grad().zero_();
      (pair->pow(2).sum()).backward();
    }
    for (auto* w : {&wide, &reference_w}) {
      if (w->grad().defined()) w->mutable_grad().zero_();
      (w->sin().sum()).backward();
    }
    fused.step();
    reference.step();
  }
  EXPECT_TRUE(torch::allclose(transposed, reference_t, 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(wide, reference_w, 1e-12, 1e-12));
}

TEST(FusedAdam, StateRoundTripsThroughLibTorchsSerialisation) {
  // Ten fused steps, saved, loaded into LibTorch's AdamW, ten more steps each way: the same.
  auto params = make_params(9);
  auto fused = make<FusedAdamW, torch::optim::AdamWOptions>(params, 0.01);
  for (int step = 0; step < 10; ++step) {
    fill_gradients(params, step);
    fused->step();
  }
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    fused->save(archive);
    archive.save_to(saved);
  }
  auto copy = make_params(9);
  for (size_t i = 0; i < 3; ++i) {
    torch::NoGradGuard no_grad;
    copy.all()[i].copy_(params.all()[i]);
  }
  auto reference = make<torch::optim::AdamW, torch::optim::AdamWOptions>(copy, 0.01);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    reference->load(archive);
  }
  for (int step = 10; step < 20; ++step) {
    fill_gradients(params, step);
    fill_gradients(copy, step);
    fused->step();
    reference->step();
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(params.all()[i], copy.all()[i], 1e-5, 1e-6)) << i;
}

}  // namespace
}  // namespace j2v::engine
