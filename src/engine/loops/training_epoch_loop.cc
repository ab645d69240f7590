// One training epoch (Lightning's _TrainingEpochLoop): batches to the strategy a micro-step
// at a time, optimizer steps every accumulate_grad_batches micro-steps, validation inside the
// epoch (val_check_interval), step logging, max_steps and stop signals.
#include <fmt/format.h>

#include <cmath>

#include "engine/profiler.h"
#include "engine/stop_signal.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

using namespace detail;

bool Trainer::validates_after_epoch(int64_t epoch) const {
  return (epoch + 1) % options_.check_val_every_n_epoch() == 0;
}

bool Trainer::stop_requested() {
  if (!interrupted_by_) interrupted_by_ = StopSignalScope::received();
  if (world_size() > 1) {
    // Every rank stops at the same step, or the others would wait in a collective forever.
    auto agreed = strategy_->all_reduce({static_cast<double>(interrupted_by_)}, Reduction::kMax, "agreeing to stop");
    interrupted_by_ = static_cast<int>(agreed[0]);
  }
  return interrupted_by_ != 0;
}

// Batches between validations inside an epoch of `limit` batches; 0: only at the epoch's end.
static int64_t validation_stride(const BatchLimit& interval, int64_t limit) {
  if (!interval.is_fraction) return static_cast<int64_t>(interval.value);
  if (interval.value >= 1.0 || limit <= 0) return 0;
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(limit * interval.value)));
}

void Trainer::run_train_epoch(Module& module, DataLoader& loader, DataLoader* val_loader) {
  module.train();
  int64_t first = resume_batch_;
  resume_batch_ = 0;
  // A loader may shuffle with the global generator: replaying an epoch needs the generator as
  // it was when the epoch began; the generator as it was when the run stopped comes after.
  if (first > 0 && resume_epoch_rng_.defined()) set_rng_state(resume_epoch_rng_);
  epoch_start_rng_ = rng_state();
  {
    auto timer = profiler_->scope("train_dataloader_start_epoch");
    loader.start_epoch(current_epoch_);
  }
  if (first == 0) begin_epoch_metrics();  // a resumed epoch keeps its restored running means
  module.on_train_epoch_start();
  for (auto& cb : callbacks_) cb->on_train_epoch_start(*this, module);
  int64_t limit = batches_to_run(options_.limit_train_batches(), loader, "limit_train_batches");
  num_loop_batches_ = limit;
  // A data module that saves its position skips what was trained on itself; otherwise the
  // epoch's order is replayed and the trained batches dropped.
  if (first > 0 && !loader.restores_position())
    for (int64_t i = 0; i < first && loader.next(); ++i) {
    }
  if (first > 0 && resume_rng_.defined()) set_rng_state(resume_rng_);
  resume_rng_ = resume_epoch_rng_ = torch::Tensor();
  bool validate_this_epoch = val_loader && validates_after_epoch(current_epoch_);
  int64_t stride = validation_stride(options_.val_check_interval(), limit);
  // A micro-step may take several batches (one per device): validate whenever a stride
  // boundary was crossed.
  int64_t validated_block = stride > 0 ? first / stride : 0;
  auto maybe_validate_inside_epoch = [&](int64_t done) {
    if (!validate_this_epoch || stride <= 0 || done / stride == validated_block || (limit >= 0 && done >= limit))
      return;
    validated_block = done / stride;
    run_validation(module, *val_loader);
    module.train();
  };
  auto log_step_metrics = [&] {
    if (!pending_step_metrics_.empty() && global_step_ % std::max<int64_t>(options_.log_every_n_steps(), 1) == 0)
      send_to_loggers(pending_step_metrics_);
    pending_step_metrics_.clear();
  };
  batches_in_epoch_ = first;
  int64_t accumulate = std::max<int64_t>(options_.accumulate_grad_batches(), 1);
  int64_t per_micro_step = strategy_->devices();
  bool automatic = module.automatic_optimization;
  bool pending_grads = false;
  bool zero_first = false;  // this micro-step opens an accumulation window
  // Gradients are zeroed where a window opens, after training_step and before backward
  // (Lightning's order), on the module the optimizers hold.
  auto step_function = [this, accumulate, &zero_first, &module](Module& m, Batch& batch, int64_t batch_idx) {
    return run_training_step(m, batch, batch_idx, accumulate, zero_first && &m == &module);
  };
  auto step_optimizers = [&] {
    {
      auto timer = profiler_->scope("reduce_gradients");
      strategy_->reduce_gradients(module);
    }
    optimizer_step(module);
    {
      auto timer = profiler_->scope("broadcast_weights");
      strategy_->broadcast_weights(module);
    }
    pending_grads = false;
  };
  std::vector<std::shared_ptr<Batch>> batches;
  std::vector<Batch*> views;
  for (int64_t idx = first; !should_stop && (limit < 0 || idx < limit);) {
    batches.clear();
    {
      auto timer = profiler_->scope("train_dataloader_next");
      while (static_cast<int64_t>(batches.size()) < per_micro_step &&
             (limit < 0 || idx + static_cast<int64_t>(batches.size()) < limit)) {
        auto batch = loader.next();
        if (!batch) break;
        batches.push_back(std::move(batch));
      }
    }
    if (world_size() > 1) {
      // Ranks whose shares end unevenly (streams) all end the epoch with the first that runs out.
      std::vector<double> empty(static_cast<size_t>(world_size()), 0.0);
      empty[static_cast<size_t>(global_rank())] = batches.empty() ? 1.0 : 0.0;
      empty = strategy_->all_reduce(empty, Reduction::kSum, "agreeing on the next step");
      std::vector<int64_t> without;
      for (size_t r = 0; r < empty.size(); ++r)
        if (empty[r] > 0) without.push_back(static_cast<int64_t>(r));
      if (!without.empty() && idx == first && without.size() < empty.size())
        throw std::runtime_error(fmt::format(
            "rank(s) {} got no training batches in epoch {} while the others did: the data gives them no share "
            "(a stream with fewer files or chunks than ranks x workers: set data.streaming.sharding to record, or a "
            "smaller data.streaming.chunk_size)",
            fmt::join(without, ", "), current_epoch_));
      if (!without.empty()) break;
    }
    if (batches.empty()) break;
    views.clear();
    batch_index_ = idx;
    for (size_t r = 0; r < batches.size(); ++r) {
      int64_t batch_idx = idx + static_cast<int64_t>(r);
      module.on_train_batch_start(*batches[r], batch_idx);
      for (auto& cb : callbacks_) cb->on_train_batch_start(*this, module, *batches[r], batch_idx);
      views.push_back(batches[r].get());
    }
    zero_first = automatic && !pending_grads;
    // Replicas fill their own gradients: the module's are zeroed before they are reduced into it.
    if (zero_first && !strategy_->trains_module_itself()) zero_grad(module);
    in_training_step_ = true;
    std::vector<torch::Tensor> losses;
    try {
      auto timer = profiler_->scope("strategy.training_step");
      losses = strategy_->training_step(module, views, idx, step_function);
    } catch (...) {
      in_training_step_ = false;
      throw;
    }
    in_training_step_ = false;
    idx += static_cast<int64_t>(batches.size());
    batches_in_epoch_ = idx;
    bool ran = std::any_of(losses.begin(), losses.end(), [](const torch::Tensor& l) { return l.defined(); });
    if (automatic && ran) {
      pending_grads = true;
      // Micro-steps counted from the epoch's start, so a resumed epoch keeps its windows.
      int64_t micro_steps = (idx + per_micro_step - 1) / per_micro_step;
      if (micro_steps % accumulate == 0) step_optimizers();
    }
    {
      // Per batch, as in Lightning: a callback that acts per optimizer step checks global_step.
      auto timer = profiler_->scope("callbacks.on_train_batch_end");
      for (size_t r = 0; r < batches.size(); ++r) {
        if (!losses[r].defined()) continue;
        int64_t batch_idx = idx - static_cast<int64_t>(batches.size()) + static_cast<int64_t>(r);
        module.on_train_batch_end(losses[r], *batches[r], batch_idx);
        for (auto& cb : callbacks_) cb->on_train_batch_end(*this, module, losses[r], *batches[r], batch_idx);
      }
    }
    log_step_metrics();
    if (options_.max_steps() > 0 && global_step_ >= options_.max_steps()) {
      should_stop = true;
      break;
    }
    if (should_stop) break;
    if (!pending_grads) {
      maybe_validate_inside_epoch(idx);
      if (stop_requested()) break;
    }
  }
  if (pending_grads && !interrupted_by_) step_optimizers();  // the epoch's last, partial accumulation
  // The epoch ends (on_train_epoch_end, its means logged) in fit, after its validation, as in Lightning.
}

}  // namespace j2v::engine
