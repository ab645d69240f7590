// Automatic optimization: the one training-step function every strategy runs (forward, loss
// check, backward), and the optimizer step around it: hooks, clipping, schedulers, zeroing
// (Lightning's _AutomaticOptimization). Manual optimization is the module's own, through
// Module::manual_backward / optimizer_step (engine/module.cc).
#include <fmt/format.h>

#include <cmath>

#include "engine/plain_float.h"
#include "engine/precision.h"
#include "engine/profiler.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

using namespace detail;

namespace {

// clip_grad_norm_ in one pass over each gradient's memory where all are plain float arrays
// (false, untouched, otherwise): LibTorch's costs two operators per parameter plus a stack.
// As LibTorch's, it scales by max_norm / (norm + 1e-6) when that is below 1, or NaN.
bool clip_plain_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    if (!is_plain_float32(p.grad())) return false;
    grads.push_back(p.grad());
  }
  double partial[4] = {0, 0, 0, 0};  // independent sums: four multiply-adds in flight
  for (const auto& g : grads) {
    const float* x = g.data_ptr<float>();
    int64_t n = g.numel(), e = 0;
    for (; e + 4 <= n; e += 4)
      for (int lane = 0; lane < 4; ++lane) partial[lane] += static_cast<double>(x[e + lane]) * x[e + lane];
    for (; e < n; ++e) partial[0] += static_cast<double>(x[e]) * x[e];
  }
  double coefficient = max_norm / (std::sqrt(partial[0] + partial[1] + partial[2] + partial[3]) + 1e-6);
  if (coefficient >= 1.0) return true;
  auto scale = static_cast<float>(coefficient);
  for (auto& g : grads) {
    float* x = g.data_ptr<float>();
    for (int64_t e = 0, n = g.numel(); e < n; ++e) x[e] *= scale;
  }
  return true;
}

}  // namespace

torch::Tensor Trainer::run_training_step(Module& module, Batch& batch, int64_t idx, int64_t accumulate,
                                         bool zero_grad_first) {
  logging_batch_size() = batch.size();
  torch::Tensor loss;
  {
    PrecisionScope precision(mixed_precision_);
    auto timer = profiler_->scope("training_step");
    loss = module.training_step(batch, idx);
  }
  if (!module.automatic_optimization) return loss.defined() ? loss : torch::zeros({});
  if (!loss.defined()) return loss;  // the module skipped this batch
  check_loss(loss, current_epoch_, idx);
  if (zero_grad_first) zero_grad(module);
  module.on_before_backward(loss);
  {
    auto timer = profiler_->scope("backward");
    (accumulate > 1 ? loss / static_cast<double>(accumulate) : loss).backward();
  }
  module.on_after_backward();
  return loss;
}

void Trainer::clip_gradients(Module& module) {
  if (options_.gradient_clip_val() <= 0) return;
  auto timer = profiler_->scope("clip_gradients");
  if (options_.gradient_clip_algorithm() == "value")
    torch::nn::utils::clip_grad_value_(module.parameters(), options_.gradient_clip_val());
  else if (auto params = module.parameters(); !clip_plain_grad_norm(params, options_.gradient_clip_val()))
    torch::nn::utils::clip_grad_norm_(params, options_.gradient_clip_val());
}

void Trainer::step_schedulers(const std::string& interval, int64_t counter) {
  for (auto& opt : optimizers_) {
    if (!opt.scheduler || opt.interval != interval || counter % std::max<int64_t>(opt.frequency, 1) != 0) continue;
    if (opt.monitor.empty()) {
      opt.scheduler->step();
      continue;
    }
    if (metric_is_stale(opt.monitor)) continue;  // no validation this epoch: nothing new to react to
    auto it = callback_metrics_.find(opt.monitor);
    // Not logged yet because nothing has validated yet (check_val_every_n_epoch): wait for it.
    bool validated = interval == "epoch" ? validated_this_epoch_ : validations_run_ > 0;
    if (it == callback_metrics_.end() && !validated) continue;
    if (it == callback_metrics_.end())
      throw std::invalid_argument(fmt::format(
          "the learning-rate scheduler monitors '{}', which was not logged (logged: {}): set its monitor to a logged "
          "metric, or validate before it steps",
          opt.monitor, [&] {
            std::vector<std::string> names;
            for (const auto& [k, _] : callback_metrics_) names.push_back(k);
            return fmt::format("{}", fmt::join(names, ", "));
          }()));
    opt.scheduler->step(it->second);
  }
}

// Lightning's order: on_before_optimizer_step sees the raw gradients, then they are clipped
// and the optimizers step. Gradients are zeroed where an accumulation window starts.
void Trainer::optimizer_step(Module& module) {
  for (auto& opt : optimizers_) module.on_before_optimizer_step(*opt.optimizer);
  clip_gradients(module);
  {
    auto timer = profiler_->scope("optimizer_step");
    for (auto& opt : optimizers_) opt.optimizer->step();
  }
  ++global_step_;
  step_schedulers("step", global_step_);
}

void Trainer::zero_grad(Module& module) {
  auto timer = profiler_->scope("zero_grad");
  for (auto& opt : optimizers_) {
    module.on_before_zero_grad(*opt.optimizer);
    opt.optimizer->zero_grad();
  }
}

}  // namespace j2v::engine
