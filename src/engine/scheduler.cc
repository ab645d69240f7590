#include "engine/scheduler.h"

#include <cmath>

namespace j2v::engine {

Scheduler::Scheduler(torch::optim::Optimizer& optimizer) : optimizer_(optimizer) {
  for (auto& group : optimizer_.param_groups()) base_lrs_.push_back(group.options().get_lr());
}

void Scheduler::step(std::optional<double>) {
  ++step_;
  apply();
}

void Scheduler::load_state_dict(const nlohmann::json& s) {
  step_ = s.value("step", int64_t{0});
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

}  // namespace j2v::engine
