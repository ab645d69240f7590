#include "mlp.h"

namespace examples {

using j2v::engine::Batch;
using j2v::engine::LogOptions;

Mlp::Mlp(MlpOptions options) : options_(std::move(options)) {
  if (options_.in_features < 1 || options_.num_classes < 2)
    throw std::invalid_argument("examples.MLP needs in_features >= 1 and num_classes >= 2 (link them from the data "
                                "module: link_arguments)");
  layers_ = torch::nn::Sequential();
  int64_t width = options_.in_features;
  for (int64_t i = 0; i < options_.layers; ++i) {
    layers_->push_back(torch::nn::Linear(width, options_.hidden));
    layers_->push_back(torch::nn::GELU());
    layers_->push_back(torch::nn::Dropout(options_.dropout));
    width = options_.hidden;
  }
  layers_->push_back(torch::nn::Linear(width, options_.num_classes));
  register_module("layers", layers_);
  if (!options_.class_weights.empty()) class_weights_ = torch::tensor(options_.class_weights, torch::kFloat32);
  save_hyperparameters({{"in_features", options_.in_features}, {"num_classes", options_.num_classes},
                        {"hidden", options_.hidden}, {"layers", options_.layers}, {"dropout", options_.dropout},
                        {"lr", options_.lr}});
}

torch::Tensor Mlp::forward(const torch::Tensor& x) { return layers_->forward(x); }

torch::Tensor Mlp::training_step(Batch& batch, int64_t) {
  auto& b = j2v::engine::batch_as<TensorBatch>(batch);
  auto logits = forward(b.x).to(torch::kFloat32);
  auto options = torch::nn::functional::CrossEntropyFuncOptions();
  if (class_weights_.defined()) options.weight(class_weights_);
  auto loss = torch::nn::functional::cross_entropy(logits, b.y, options);
  log("loss/train", loss, LogOptions().step(true).epoch(true).progress_bar());
  return loss;
}

void Mlp::evaluate(Batch& batch, const std::string& stage) {
  auto& b = j2v::engine::batch_as<TensorBatch>(batch);
  auto logits = forward(b.x).to(torch::kFloat32);
  log("loss/" + stage, torch::nn::functional::cross_entropy(logits, b.y), LogOptions().progress_bar());
  log("accuracy/" + stage, logits.argmax(1).eq(b.y).to(torch::kFloat32).mean());
}

void Mlp::validation_step(Batch& batch, int64_t) { evaluate(batch, "validate"); }
void Mlp::test_step(Batch& batch, int64_t) { evaluate(batch, "test"); }

nlohmann::json Mlp::predict_step(Batch& batch, int64_t) {
  auto& b = j2v::engine::batch_as<TensorBatch>(batch);
  auto probabilities = torch::softmax(forward(b.x).to(torch::kFloat32), 1).contiguous();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < probabilities.size(0); ++i) {
    auto row = probabilities[i];
    std::vector<double> p(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    rows.push_back({{"class", row.argmax().item<int64_t>()}, {"probabilities", p}});
  }
  return rows;
}

std::vector<j2v::engine::OptimizerConfig> Mlp::configure_optimizers() {
  j2v::engine::OptimizerConfig config;
  config.optimizer = std::make_shared<torch::optim::AdamW>(parameters(), torch::optim::AdamWOptions(options_.lr));
  config.name = "AdamW";
  return {config};
}

void register_mlp() {
  j2v::engine::modules().add(
      {"examples.MLP", "a multilayer perceptron classifier (examples/mlp_csv)",
       {{"in_features", nullptr}, {"num_classes", nullptr}, {"hidden", 64}, {"layers", 2}, {"dropout", 0.1},
        {"lr", 0.01}, {"class_weights", nullptr}},
       [](const nlohmann::json& a) -> std::shared_ptr<j2v::engine::Module> {
         MlpOptions o;
         o.in_features = a["in_features"].is_null() ? 0 : a["in_features"].get<int64_t>();
         o.num_classes = a["num_classes"].is_null() ? 0 : a["num_classes"].get<int64_t>();
         o.hidden = a["hidden"].get<int64_t>();
         o.layers = a["layers"].get<int64_t>();
         o.dropout = a["dropout"].get<double>();
         o.lr = a["lr"].get<double>();
         if (!a["class_weights"].is_null()) o.class_weights = a["class_weights"].get<std::vector<double>>();
         return std::make_shared<Mlp>(o);
       },
       {"MLP"}});
}

}  // namespace examples
