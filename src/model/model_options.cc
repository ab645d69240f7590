#include "model/model_options.h"

#include <stdexcept>

namespace j2v {

const Parameters<OptimizerOptions>& OptimizerOptions::parameters() {
  static const auto declared = Parameters<OptimizerOptions>()
                                   .add("name", &OptimizerOptions::name_, "optimization algorithm")
                                   .one_of({"adamw", "adam", "sgd"})
                                   .add("lr", &OptimizerOptions::lr_, "peak learning rate")
                                   .at_least(0)
                                   .add("weight_decay", &OptimizerOptions::weight_decay_,
                                        "weight decay of matrices (decoupled for adamw); norms, biases and "
                                        "frequencies are not decayed")
                                   .at_least(0)
                                   .add("momentum", &OptimizerOptions::momentum_, "momentum; sgd only")
                                   .between(0, 1);
  return declared;
}

const Parameters<SchedulerOptions>& SchedulerOptions::parameters() {
  static const auto declared =
      Parameters<SchedulerOptions>()
          .add("name", &SchedulerOptions::name_, "learning-rate schedule: linear warmup then cosine decay, or constant")
          .one_of({"warmup_cosine", "constant"})
          .add("warmup_fraction", &SchedulerOptions::warmup_fraction_,
               "share of all optimizer steps spent warming up linearly (warmup_cosine only)")
          .between(0, 1)
          .add("min_lr_ratio", &SchedulerOptions::min_lr_ratio_,
               "final learning rate as a fraction of optimizer.lr (warmup_cosine only)")
          .between(0, 1);
  return declared;
}

const Parameters<ModelOptions>& ModelOptions::parameters() {
  static const auto declared =
      Parameters<ModelOptions>()
          .add("name", &ModelOptions::name_, "name of the root address, i.e. the record as a whole")
          // Upper bounds far beyond any useful model: past them a typo would allocate until
          // the machine runs out of memory instead of failing with the key's name.
          .add("d_model", &ModelOptions::d_model_, "width of the field embeddings and of every transformer layer")
          .between(1, 8192)
          .add("n_layers", &ModelOptions::n_layers_, "number of transformer layers mixing the field embeddings")
          .between(1, 64)  // as a branch's n_layers
          .add("n_heads", &ModelOptions::n_heads_, "attention heads per layer; must divide model.d_model")
          .between(1, 256)
          .add("dropout", &ModelOptions::dropout_, "dropout probability inside the network (below 1)")
          .between(0, 1)
          .add("embed", &ModelOptions::embed_, "also emit the record embedding in predictions")
          .add("ensemble", &ModelOptions::ensemble_,
               "networks trained together on the same batches, each on its own loss; predictions average "
               "their outputs (embeddings are the first network's)")
          .between(1, 64);
  return declared;
}

nlohmann::json ModelOptions::to_json() const {
  nlohmann::json out = parameters().to_json(*this);
  out["optimizer"] = OptimizerOptions::parameters().to_json(optimizer());
  out["scheduler"] = SchedulerOptions::parameters().to_json(scheduler());
  return out;
}

ModelOptions ModelOptions::from_json(const nlohmann::json& j) {
  // Checkpoints of earlier versions carry keys that moved elsewhere (batch_size is data's now).
  nlohmann::json own = nlohmann::json::object();
  for (const auto& info : parameters().info())
    if (j.contains(info.name)) own[info.name] = j[info.name];
  ModelOptions o = parameters().from_json(own, "model");
  if (j.contains("optimizer")) o.optimizer(OptimizerOptions::parameters().from_json(j["optimizer"], "optimizer"));
  if (j.contains("scheduler")) o.scheduler(SchedulerOptions::parameters().from_json(j["scheduler"], "scheduler"));
  return o;
}

void ModelOptions::validate() const {
  parameters().check(*this, "model");
  OptimizerOptions::parameters().check(optimizer(), "optimizer");
  SchedulerOptions::parameters().check(scheduler(), "scheduler");
  if (d_model() % n_heads() != 0)
    throw std::invalid_argument("config keys 'model.d_model' (" + std::to_string(d_model()) + ") and 'model.n_heads' (" +
                                std::to_string(n_heads()) + "): d_model must be divisible by n_heads");
  if (dropout() >= 1) throw std::invalid_argument("model.dropout must be below 1");
  if (!(optimizer().lr() > 0)) throw std::invalid_argument("optimizer.lr must be > 0");
}

}  // namespace j2v
