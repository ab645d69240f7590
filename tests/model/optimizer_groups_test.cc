// One way to build optimizers: json2vec's weight-decay groups hold whether the optimizer comes
// from the model's own configure_optimizers or from the config's `optimizer:` section.
#include <gtest/gtest.h>

#include "data/record_buffer.h"
#include "data/record_codec.h"
#include "engine/components.h"
#include "engine/module.h"
#include "model/model.h"

namespace j2v {
namespace {

Model fitted_model() {
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("fraud").target()},
                                  ModelOptions().d_model(16).n_layers(1).n_heads(2));
  std::vector<std::string> records;
  for (int i = 0; i < 20; ++i)
    records.push_back(nlohmann::json{{"amount", i}, {"merchant", i % 3 ? "a" : "b"}, {"fraud", i % 2 ? "y" : "n"}}.dump());
  model.codec()->fit(*RecordBuffer::from_strings(records, "<records>"), nullptr, 1);
  static_cast<engine::Module&>(model).setup(engine::Stage::kFit);  // builds the network for the fitted codec
  return model;
}

// Each param group's size and weight decay, in order.
template <typename Options>
std::vector<std::pair<size_t, double>> groups_of(torch::optim::Optimizer& optimizer) {
  std::vector<std::pair<size_t, double>> out;
  for (auto& group : optimizer.param_groups())
    out.emplace_back(group.params().size(), static_cast<Options&>(group.options()).weight_decay());
  return out;
}

TEST(ModelOptimizers, AConfiguredOptimizerKeepsTheModelsWeightDecayGroups) {
  auto model = fitted_model();
  engine::Module& module = model;
  auto own = module.configure_optimizers();
  ASSERT_EQ(own.size(), 1u);
  auto expected = groups_of<torch::optim::AdamWOptions>(*own[0].optimizer);
  // Matrices decay; norms, biases and frequencies do not.
  ASSERT_EQ(expected.size(), 2u);
  EXPECT_GT(expected[0].first, 0u);
  EXPECT_GT(expected[1].first, 0u);
  EXPECT_DOUBLE_EQ(expected[0].second, 0.01);
  EXPECT_DOUBLE_EQ(expected[1].second, 0.0);

  // `optimizer: {class_path: AdamW}` in a config goes through the same builder.
  auto configured = engine::make_optimizer("torch.optim.AdamW", {{"weight_decay", 0.01}}, module);
  EXPECT_EQ(groups_of<torch::optim::AdamWOptions>(*configured), expected);
  auto sgd = engine::make_optimizer("SGD", {{"weight_decay", 0.1}}, module);
  auto sgd_groups = groups_of<torch::optim::SGDOptions>(*sgd);
  ASSERT_EQ(sgd_groups.size(), 2u);
  EXPECT_DOUBLE_EQ(sgd_groups[0].second, 0.1);
  EXPECT_DOUBLE_EQ(sgd_groups[1].second, 0.0);
}

TEST(ModelOptimizers, AModuleWithoutGroupsDecaysEverything) {
  class Plain : public engine::Module {
   public:
    Plain() { register_module("linear", torch::nn::Linear(3, 2)); }
    torch::Tensor training_step(engine::Batch&, int64_t) override { return {}; }
    std::vector<engine::OptimizerConfig> configure_optimizers() override { return {}; }
  } plain;
  auto optimizer = engine::make_optimizer("Adam", {{"weight_decay", 0.2}}, plain);
  auto groups = groups_of<torch::optim::AdamOptions>(*optimizer);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].first, 2u);
  EXPECT_DOUBLE_EQ(groups[0].second, 0.2);
}

}  // namespace
}  // namespace j2v
