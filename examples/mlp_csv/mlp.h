#pragma once
// A multilayer perceptron classifier as a j2v::engine::Module: the engine trains any
// LibTorch model, not only json2vec's.
#include "tensor_batch.h"

namespace examples {

struct MlpOptions {
  int64_t in_features = 0;
  int64_t num_classes = 0;
  int64_t hidden = 64;
  int64_t layers = 2;
  double dropout = 0.1;
  double lr = 0.01;
  std::vector<double> class_weights;  // empty: unweighted
};

class Mlp : public j2v::engine::Module {
 public:
  explicit Mlp(MlpOptions options);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor training_step(j2v::engine::Batch& batch, int64_t batch_idx) override;
  void validation_step(j2v::engine::Batch& batch, int64_t batch_idx) override;
  void test_step(j2v::engine::Batch& batch, int64_t batch_idx) override;
  nlohmann::json predict_step(j2v::engine::Batch& batch, int64_t batch_idx) override;
  std::vector<j2v::engine::OptimizerConfig> configure_optimizers() override;

 private:
  void evaluate(j2v::engine::Batch& batch, const std::string& stage);
  MlpOptions options_;
  torch::nn::Sequential layers_{nullptr};
  torch::Tensor class_weights_;
};

// Registers examples.MLP with the engine's model registry.
void register_mlp();

}  // namespace examples
