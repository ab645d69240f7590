#pragma once
// Hyperparameters of a json2vec model, with LibTorch-style fluent setters; the config file's
// model/optimizer/scheduler sections map onto these one to one.
#include <nlohmann/json.hpp>
#include <string>

#include "base/options.h"
#include "base/parameters.h"

namespace j2v {

struct OptimizerOptions {
  static const Parameters<OptimizerOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(std::string, name) = "adamw";  // adamw | adam | sgd
  J2V_ARG(double, lr) = 1e-3;
  J2V_ARG(double, weight_decay) = 0.01;
  J2V_ARG(double, momentum) = 0.9;  // sgd only
};

struct SchedulerOptions {
  static const Parameters<SchedulerOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(std::string, name) = "warmup_cosine";  // warmup_cosine | constant
  J2V_ARG(double, warmup_fraction) = 0.05;
  J2V_ARG(double, min_lr_ratio) = 0.01;
};

struct ModelOptions {
  J2V_ARG(std::string, name) = "record";  // the root address
  J2V_ARG(int64_t, d_model) = 64;
  J2V_ARG(int64_t, n_layers) = 2;
  J2V_ARG(int64_t, n_heads) = 4;
  J2V_ARG(double, dropout) = 0.1;
  J2V_ARG(bool, embed) = false;  // emit the record embedding in predictions
  // Networks trained side by side on the same batches, each on its own loss; predictions,
  // validation and test average their heads' outputs.
  J2V_ARG(int64_t, ensemble) = 1;
  J2V_ARG(OptimizerOptions, optimizer) = {};
  J2V_ARG(SchedulerOptions, scheduler) = {};

 public:
  // name, d_model, n_layers, n_heads, dropout, embed, ensemble (optimizer and scheduler declare their own).
  static const Parameters<ModelOptions>& parameters();
  nlohmann::json to_json() const;
  static ModelOptions from_json(const nlohmann::json& j);
  void validate() const;  // throws std::invalid_argument naming the key
};

}  // namespace j2v
