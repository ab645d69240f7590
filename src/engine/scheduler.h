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
  void apply();
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

}  // namespace j2v::engine
