#pragma once
// Learning-rate schedulers that set the lr of every param group of an optimizer.
#include <torch/torch.h>

#include <optional>

namespace j2v::engine {

class Scheduler {
 public:
  explicit Scheduler(torch::optim::Optimizer& optimizer);
  virtual ~Scheduler() = default;
  virtual void step(std::optional<double> monitored = std::nullopt);
  int64_t last_step() const { return step_; }
  virtual nlohmann::json state_dict() const { return {{"step", step_}}; }
  virtual void load_state_dict(const nlohmann::json& s);
  std::vector<double> current_lrs() const;

 protected:
  virtual double factor(int64_t step) const = 0;  // multiplier on the base lr
  virtual void apply();
  torch::optim::Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t step_ = 0;
};

class ConstantScheduler : public Scheduler {
 public:
  using Scheduler::Scheduler;

 protected:
  double factor(int64_t) const override { return 1.0; }
};

// Linear warmup over warmup_steps, then cosine decay to min_ratio x base lr at total_steps.
class WarmupCosineScheduler : public Scheduler {
 public:
  WarmupCosineScheduler(torch::optim::Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                        double min_ratio);

 protected:
  double factor(int64_t step) const override;

 private:
  int64_t warmup_steps_, total_steps_;
  double min_ratio_;
};

// lr = base x gamma^floor(step / step_size) (PyTorch's StepLR).
class StepScheduler : public Scheduler {
 public:
  StepScheduler(torch::optim::Optimizer& optimizer, int64_t step_size, double gamma);

 protected:
  double factor(int64_t step) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// The 1cycle policy (PyTorch's OneCycleLR, cosine annealing, two phases): from
// max_lr / div_factor up to max_lr over pct_start of total_steps, then down to
// max_lr / (div_factor x final_div_factor). Momentum is not cycled.
class OneCycleScheduler : public Scheduler {
 public:
  OneCycleScheduler(torch::optim::Optimizer& optimizer, double max_lr, int64_t total_steps, double pct_start,
                    double div_factor, double final_div_factor);

 protected:
  double factor(int64_t step) const override;

 private:
  double pct_start_, div_factor_, final_div_factor_;
  int64_t total_steps_;
};

// Multiplies the lr by `factor` when a monitored metric has not improved for `patience`
// steps of the scheduler (PyTorch's ReduceLROnPlateau, relative threshold).
class ReduceOnPlateauScheduler : public Scheduler {
 public:
  ReduceOnPlateauScheduler(torch::optim::Optimizer& optimizer, std::string mode, double factor, int64_t patience,
                           double threshold, int64_t cooldown, double min_lr);
  void step(std::optional<double> monitored = std::nullopt) override;
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& s) override;

 protected:
  double factor(int64_t) const override { return scale_; }
  void apply() override;

 private:
  bool improved(double value) const;
  std::string mode_;
  double factor_, threshold_, min_lr_;
  int64_t patience_, cooldown_;
  double best_;
  double scale_ = 1.0;
  int64_t bad_steps_ = 0, cooldown_left_ = 0;
};

}  // namespace j2v::engine
