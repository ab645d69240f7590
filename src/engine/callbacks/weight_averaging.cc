#include "engine/callbacks/weight_averaging.h"

#include "engine/module.h"
#include "engine/trainer.h"

namespace j2v::engine {

WeightAveraging::WeightAveraging(WeightAveragingOptions options) : options_(options) {
  if (!(options_.decay() > 0 && options_.decay() < 1))
    throw std::invalid_argument("weight averaging decay must be in (0, 1)");
}

void WeightAveraging::on_fit_start(Trainer&, Module& module) {
  torch::NoGradGuard no_grad;
  params_ = module.parameters();
  average_.clear();
  raw_.clear();
  updates_ = 0;
  swapped_ = false;
  if (restored_.size() == params_.size() && !restored_.empty()) {
    updates_ = restored_updates_;
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
  restored_updates_ = s.value("updates", int64_t{0});
  restored_swapped_ = s.value("swapped", false);
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
  if (swapped_ || average_.empty()) return;
  torch::NoGradGuard no_grad;
  ++updates_;
  // Early on the average would be dominated by the random initialisation: warm the decay up.
  double decay = std::min(options_.decay(), (1.0 + updates_) / (10.0 + updates_));
  // One kernel per tensor (lerp) instead of two (mul, add): this runs after every step.
  for (size_t i = 0; i < params_.size(); ++i) average_[i].lerp_(params_[i].detach(), 1.0 - decay);
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
