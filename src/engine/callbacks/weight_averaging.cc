#include "engine/callbacks/weight_averaging.h"

#include "base/json_read.h"
#include "engine/module.h"
#include "engine/plain_float.h"
#include "engine/trainer.h"

namespace j2v::engine {

namespace {

// average += weight * (param - average), as LibTorch's lerp computes it (from the far end
// when weight >= 0.5, for accuracy near 1).
void lerp_plain(float* average, const float* param, float weight, int64_t n) {
  if (weight < 0.5f) {
    for (int64_t i = 0; i < n; ++i) average[i] = average[i] + weight * (param[i] - average[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) average[i] = param[i] - (param[i] - average[i]) * (1.0f - weight);
  }
}

}  // namespace

const Parameters<WeightAveragingOptions>& WeightAveragingOptions::parameters() {
  static const auto declared = Parameters<WeightAveragingOptions>()
                                   .add("decay", &WeightAveragingOptions::decay_,
                                        "decay per optimizer step of the exponential moving average of the weights")
                                   .between(0, 0.99999);
  return declared;
}

WeightAveraging::WeightAveraging(WeightAveragingOptions options) : options_(options) {
  WeightAveragingOptions::parameters().check(options_, "WeightAveraging");
}

void WeightAveraging::on_fit_start(Trainer&, Module& module) {
  torch::NoGradGuard no_grad;
  params_ = module.parameters();
  average_.clear();
  raw_.clear();
  updates_ = 0;
  last_update_step_ = 0;
  swapped_ = false;
  if (restored_.size() == params_.size() && !restored_.empty()) {
    updates_ = restored_updates_;
    last_update_step_ = restored_last_update_step_;
    if (restored_swapped_) {  // the checkpoint's module weights are the average
      for (auto& p : params_) average_.push_back(p.detach().clone());
      raw_ = restored_;
      swapped_ = true;
    } else {
      average_ = restored_;
    }
    restored_.clear();
    return;
  }
  for (auto& p : params_) average_.push_back(p.detach().clone());
}

void WeightAveraging::on_validation_end(Trainer&, Module&) { swap_out(); }

void WeightAveraging::load_state_dict(const nlohmann::json& s) {
  restored_updates_ = read_integer(s, "updates", 0);
  restored_swapped_ = s.value("swapped", false);
  restored_last_update_step_ = read_integer(s, "last_update_step", 0);
}

void WeightAveraging::save_tensors(torch::serialize::OutputArchive& archive) const {
  const auto& aside = swapped_ ? raw_ : average_;
  for (size_t i = 0; i < aside.size(); ++i) archive.write("w" + std::to_string(i), aside[i]);
}

void WeightAveraging::load_tensors(torch::serialize::InputArchive& archive) {
  restored_.clear();
  for (size_t i = 0;; ++i) {
    torch::Tensor t;
    if (!archive.try_read("w" + std::to_string(i), t)) break;
    restored_.push_back(t);
  }
}

void WeightAveraging::on_train_batch_end(Trainer& trainer, Module&, const torch::Tensor&, Batch&, int64_t) {
  // on_train_batch_end runs once per batch, as in Lightning; the weights change once per
  // optimizer step (several batches with accumulation or replicas), and so does the average.
  if (swapped_ || average_.empty() || trainer.global_step() <= last_update_step_) return;
  last_update_step_ = trainer.global_step();
  torch::NoGradGuard no_grad;
  ++updates_;
  // Early on the average would be dominated by the random initialisation: warm the decay up.
  double decay = std::min(options_.decay(), (1.0 + updates_) / (10.0 + updates_));
  // This runs after every step: one pass over raw memory per tensor where it can (LibTorch's
  // lerp formula and rounding), one lerp kernel otherwise.
  double weight = 1.0 - decay;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& average = average_[i];
    const auto& param = params_[i];
    if (is_plain_float32(average) && is_plain_float32(param) && average.numel() == param.numel())
      lerp_plain(average.data_ptr<float>(), param.data_ptr<float>(), static_cast<float>(weight), average.numel());
    else
      average.lerp_(param.detach(), weight);
  }
}

void WeightAveraging::swap_in() {
  if (swapped_ || average_.empty()) return;
  torch::NoGradGuard no_grad;
  raw_.clear();
  for (size_t i = 0; i < params_.size(); ++i) {
    raw_.push_back(params_[i].detach().clone());
    params_[i].copy_(average_[i]);
  }
  swapped_ = true;
}

void WeightAveraging::swap_out() {
  if (!swapped_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(raw_[i]);
  raw_.clear();
  swapped_ = false;
}

}  // namespace j2v::engine
