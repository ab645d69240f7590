#include "engine/scheduler.h"
#include "base/json_read.h"

#include <cmath>
#include <stdexcept>

namespace j2v::engine {

Scheduler::Scheduler(torch::optim::Optimizer& optimizer) : optimizer_(optimizer) {
  for (auto& group : optimizer_.param_groups()) base_lrs_.push_back(group.options().get_lr());
}

void Scheduler::step(std::optional<double>) {
  ++step_;
  apply();
}

void Scheduler::load_state_dict(const nlohmann::json& s) {
  step_ = read_integer(s, "step", 0);
  apply();
}

void Scheduler::apply() {
  double f = factor(step_);
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size() && i < base_lrs_.size(); ++i) groups[i].options().set_lr(base_lrs_[i] * f);
}

std::vector<double> Scheduler::current_lrs() const {
  std::vector<double> lrs;
  for (auto& group : optimizer_.param_groups()) lrs.push_back(group.options().get_lr());
  return lrs;
}

WarmupCosineScheduler::WarmupCosineScheduler(torch::optim::Optimizer& optimizer, int64_t warmup_steps,
                                             int64_t total_steps, double min_ratio)
    : Scheduler(optimizer),
      warmup_steps_(std::max<int64_t>(0, warmup_steps)),
      total_steps_(std::max<int64_t>(1, total_steps)),
      min_ratio_(min_ratio) {
  apply();  // step 0 starts at the bottom of the warmup, not at the full lr
}

double WarmupCosineScheduler::factor(int64_t step) const {
  if (step < warmup_steps_) return static_cast<double>(step + 1) / (warmup_steps_ + 1);
  double progress = static_cast<double>(step - warmup_steps_) / std::max<int64_t>(1, total_steps_ - warmup_steps_);
  progress = std::min(1.0, progress);
  return min_ratio_ + (1.0 - min_ratio_) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

StepScheduler::StepScheduler(torch::optim::Optimizer& optimizer, int64_t step_size, double gamma)
    : Scheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size_ < 1) throw std::invalid_argument("StepLR.step_size must be >= 1");
  if (!(gamma_ > 0)) throw std::invalid_argument("StepLR.gamma must be positive");
}

double StepScheduler::factor(int64_t step) const { return std::pow(gamma_, static_cast<double>(step / step_size_)); }

OneCycleScheduler::OneCycleScheduler(torch::optim::Optimizer& optimizer, double max_lr, int64_t total_steps,
                                     double pct_start, double div_factor, double final_div_factor)
    : Scheduler(optimizer),
      pct_start_(pct_start),
      div_factor_(div_factor),
      final_div_factor_(final_div_factor),
      total_steps_(total_steps) {
  if (!(max_lr > 0)) throw std::invalid_argument("OneCycleLR.max_lr must be positive");
  if (total_steps_ < 2) throw std::invalid_argument("OneCycleLR needs at least 2 steps (total_steps)");
  if (!(pct_start_ > 0 && pct_start_ < 1)) throw std::invalid_argument("OneCycleLR.pct_start must be in (0, 1)");
  if (!(div_factor_ > 0 && final_div_factor_ > 0))
    throw std::invalid_argument("OneCycleLR.div_factor and final_div_factor must be positive");
  // Every group cycles around max_lr, whatever lr the optimizer was built with.
  for (auto& lr : base_lrs_) lr = max_lr;
  apply();
}

double OneCycleScheduler::factor(int64_t step) const {
  auto anneal = [](double from, double to, double pct) { return to + (from - to) / 2.0 * (1.0 + std::cos(M_PI * pct)); };
  double initial = 1.0 / div_factor_, minimum = initial / final_div_factor_;
  double peak_step = pct_start_ * static_cast<double>(total_steps_) - 1.0;
  double last_step = static_cast<double>(total_steps_) - 1.0;
  double s = std::min(static_cast<double>(step), last_step);
  if (s <= peak_step) return anneal(initial, 1.0, peak_step > 0 ? s / peak_step : 1.0);
  return anneal(1.0, minimum, (s - peak_step) / std::max(last_step - peak_step, 1e-12));
}

ReduceOnPlateauScheduler::ReduceOnPlateauScheduler(torch::optim::Optimizer& optimizer, std::string mode, double factor,
                                                   int64_t patience, double threshold, int64_t cooldown, double min_lr)
    : Scheduler(optimizer),
      mode_(std::move(mode)),
      factor_(factor),
      threshold_(threshold),
      min_lr_(min_lr),
      patience_(patience),
      cooldown_(cooldown) {
  if (mode_ != "min" && mode_ != "max")
    throw std::invalid_argument("ReduceLROnPlateau.mode: '" + mode_ + "' is not allowed (allowed: min, max)");
  if (!(factor_ > 0 && factor_ < 1)) throw std::invalid_argument("ReduceLROnPlateau.factor must be in (0, 1)");
  if (patience_ < 0 || cooldown_ < 0) throw std::invalid_argument("ReduceLROnPlateau.patience and cooldown must be >= 0");
  best_ = mode_ == "min" ? INFINITY : -INFINITY;
}

// Two departures from PyTorch, on purpose: a non-finite metric is ignored (PyTorch counts it
// as a bad step and may cut the rate for a transient NaN), and the relative threshold keeps
// its meaning for negative values (PyTorch's best * (1 - threshold) moves the wrong way there).
bool ReduceOnPlateauScheduler::improved(double value) const {
  return mode_ == "min" ? value < best_ * (1.0 - threshold_ * (best_ >= 0 ? 1 : -1))
                        : value > best_ * (1.0 + threshold_ * (best_ >= 0 ? 1 : -1));
}

void ReduceOnPlateauScheduler::step(std::optional<double> monitored) {
  if (!monitored || !std::isfinite(*monitored)) return;
  ++step_;
  if (std::isinf(best_) || improved(*monitored)) {
    best_ = *monitored;
    bad_steps_ = 0;
  } else {
    ++bad_steps_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_steps_ = 0;
  }
  if (bad_steps_ > patience_) {
    scale_ *= factor_;
    cooldown_left_ = cooldown_;
    bad_steps_ = 0;
  }
  apply();
}

void ReduceOnPlateauScheduler::apply() {
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size() && i < base_lrs_.size(); ++i)
    groups[i].options().set_lr(std::max(base_lrs_[i] * scale_, min_lr_));
}

nlohmann::json ReduceOnPlateauScheduler::state_dict() const {
  return {{"step", step_}, {"best", std::isinf(best_) ? nlohmann::json(nullptr) : nlohmann::json(best_)},
          {"scale", scale_}, {"bad_steps", bad_steps_}, {"cooldown_left", cooldown_left_}};
}

void ReduceOnPlateauScheduler::load_state_dict(const nlohmann::json& s) {
  step_ = read_integer(s, "step", 0);
  if (s.contains("best") && s["best"].is_number()) best_ = s["best"].get<double>();
  scale_ = s.value("scale", 1.0);
  bad_steps_ = read_integer(s, "bad_steps", 0);
  cooldown_left_ = read_integer(s, "cooldown_left", 0);
  apply();
}

}  // namespace j2v::engine
