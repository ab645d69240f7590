// Validation and test loops (Lightning's _EvaluationLoop): no gradients, epoch means, the
// validation inside a fit keeping the training epoch's running means aside.
#include <fmt/format.h>

#include "engine/precision.h"
#include "engine/profiler.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

using namespace detail;

void Trainer::run_validation(Module& module, DataLoader& loader) {
  auto timer = profiler_->scope("run_validation");
  // Validation keeps its own running means: the training epoch's must survive a check inside it.
  auto training_means = std::move(epoch_accumulators_);
  epoch_accumulators_.clear();
  for (auto& cb : callbacks_) cb->on_validation_start(*this, module);
  module.on_validation_start();
  auto logged = run_eval_loop(module, loader, Stage::kValidate);
  ++validations_run_;
  last_validation_metrics_.clear();
  for (const auto& [name, _] : logged) last_validation_metrics_.insert(name);
  module.on_validation_end();
  for (auto& cb : callbacks_) cb->on_validation_end(*this, module);
  epoch_accumulators_ = std::move(training_means);
}

std::map<std::string, double> Trainer::run_eval_loop(Module& module, DataLoader& loader, Stage stage) {
  torch::NoGradGuard no_grad;
  module.eval();
  auto saved_stage = stage_;
  stage_ = stage;
  loader.start_epoch(0);
  begin_epoch_metrics();
  if (stage == Stage::kValidate) module.on_validation_epoch_start();
  else module.on_test_epoch_start();
  const BatchLimit& limit_opt = stage == Stage::kValidate ? options_.limit_val_batches() : options_.limit_test_batches();
  int64_t limit = batches_to_run(limit_opt, loader, stage == Stage::kValidate ? "limit_val_batches" : "limit_test_batches");
  num_loop_batches_ = limit;
  for (int64_t idx = 0; limit < 0 || idx < limit; ++idx) {
    auto batch = loader.next();
    if (!batch) break;
    batch_index_ = idx;
    logging_batch_size() = batch->size();
    PrecisionScope precision(mixed_precision_);
    if (stage == Stage::kValidate) {
      {
        auto timer = profiler_->scope("validation_step");
        module.validation_step(*batch, idx);
      }
      for (auto& cb : callbacks_) cb->on_validation_batch_end(*this, module, *batch, idx);
    } else {
      module.test_step(*batch, idx);
    }
  }
  logging_batch_size() = 1;
  if (stage == Stage::kValidate) module.on_validation_epoch_end();
  else module.on_test_epoch_end();
  auto metrics = end_epoch_metrics();
  send_to_loggers(metrics);
  stage_ = saved_stage;
  module.train();
  return metrics;
}

std::map<std::string, double> Trainer::evaluate(Module& module, DataModule& data,
                                                const std::optional<std::string>& ckpt_path, Stage stage) {
  Module::RunningScope running(module);
  std::string path = ckpt_path ? resolve_checkpoint(*ckpt_path) : "";
  if (!path.empty()) preload_module_state(path, module);
  setup_run(module, false);
  DeterministicScope deterministic(options_.deterministic());
  data.prepare_data();
  data.setup(stage);
  module.setup(stage);
  if (!path.empty()) restore(path, module, false);
  auto loader = stage == Stage::kValidate ? data.val_dataloader() : data.test_dataloader();
  if (!loader)
    throw std::invalid_argument(fmt::format("{0} needs data: the data module has no {0} split", stage_name(stage)));
  auto metrics = run_eval_loop(module, *loader, stage);
  for (auto& cb : callbacks_) {
    if (stage == Stage::kValidate) cb->on_validation_end(*this, module);
    else cb->on_test_end(*this, module);
  }
  module.teardown(stage);
  return metrics;
}

}  // namespace j2v::engine
