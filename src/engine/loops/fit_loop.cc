// fit (Lightning's _FitLoop): setting up data, module, optimizers and strategy, resuming,
// then epochs until max_epochs, max_steps, early stopping or a signal.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "base/atomic_file.h"
#include "engine/distributed/sharded_loader.h"
#include "engine/op_profiler.h"
#include "engine/profiler.h"
#include "engine/stop_signal.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

namespace fs = std::filesystem;
using namespace detail;

void Trainer::fit(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path) {
  Module::RunningScope running(module);
  should_stop = false;
  stage_ = Stage::kFit;
  current_epoch_ = 0;
  global_step_ = 0;
  resume_batch_ = 0;
  batches_in_epoch_ = 0;
  interrupted_by_ = 0;
  validations_run_ = 0;
  validated_this_epoch_ = false;
  last_validation_metrics_.clear();
  ending_unvalidated_epoch_ = false;
  interrupt_checkpoint_.clear();
  auto fit_start = std::chrono::steady_clock::now();
  std::string resume_path;
  if (ckpt_path) {
    resume_path = resolve_checkpoint(*ckpt_path);
    preload_module_state(resume_path, module);
  }
  setup_run(module, true);
  // Checkpoints written during this fit carry the data module's position (a stream's).
  struct DataScope {
    DataModule*& slot;
    ~DataScope() { slot = nullptr; }
  } data_scope{data_};
  data_ = &data;
  data.prepare_data();
  bool data_shards_itself = world_size() > 1 && data.shard(global_rank(), world_size());
  data.setup(Stage::kFit);
  module.setup(Stage::kFit);
  auto train_loader = data.train_dataloader();
  if (!train_loader) throw std::invalid_argument("fit needs training data: the data module has no train split");
  if (world_size() > 1 && !data_shards_itself)
    train_loader = std::make_shared<ShardedLoader>(train_loader, global_rank(), world_size(), /*equal_shares=*/true);
  if (train_loader->endless() && options_.limit_train_batches().is_fraction && options_.max_steps() <= 0)
    throw std::invalid_argument(
        "the training stream never ends (sampling with replacement): set trainer.limit_train_batches to a number of "
        "batches per epoch (an integer), or trainer.max_steps");
  auto val_loader = data.val_dataloader();
  if (options_.overfit_batches().value > 0) {
    int64_t n = batches_to_run(options_.overfit_batches(), *train_loader, "overfit_batches");
    if (n < 0)
      throw std::invalid_argument("trainer.overfit_batches is a fraction of a stream of unknown length: give a number "
                                  "of batches instead");
    std::vector<std::shared_ptr<Batch>> batches;
    train_loader->start_epoch(0);
    while (static_cast<int64_t>(batches.size()) < n)
      if (auto batch = train_loader->next()) batches.push_back(std::move(batch));
      else break;
    // Each loop reads the same batches through its own cursor: a validation inside the epoch
    // must not use up the training loop's.
    train_loader = std::make_shared<CachedLoader>(batches);
    val_loader = std::make_shared<CachedLoader>(std::move(batches));
  }
  // A stream does not know its length: schedules use its estimate (a count limit wins).
  int64_t known = train_loader->num_batches();
  num_training_batches_ = options_.limit_train_batches().apply(known >= 0 ? known : train_loader->estimated_batches());
  if (!module.automatic_optimization && !strategy_->supports_manual_optimization())
    throw std::invalid_argument("manual optimization (automatic_optimization = false) steps the optimizers from the "
                                "module itself: it cannot run on the " + strategy_->name() +
                                " strategy (set trainer.devices to 1)");
  optimizers_ = optimizer_factory_ ? optimizer_factory_(module) : module.configure_optimizers();
  if (!resume_path.empty()) restore(resume_path, module, true);
  strategy_->setup(module, *this);
  for (auto& logger : loggers_) logger->log_hyperparams(module.hparams());
  StopSignalScope signals(options_.handle_signals() && !options_.fast_dev_run());
  DeterministicScope deterministic(options_.deterministic());
  std::unique_ptr<OpProfiler> op_profiler;
  if (options_.profiler() == "ops") op_profiler = std::make_unique<OpProfiler>();
  int64_t op_profiled_steps = 0;
  try {
    module.on_fit_start();
    for (auto& cb : callbacks_) cb->on_fit_start(*this, module);
    module.on_train_start();
    while ((options_.max_epochs() < 0 || current_epoch_ < options_.max_epochs()) && !should_stop) {
      {
        // The operator profiler sees training epochs only, not validation.
        int64_t steps_before = global_step_;
        if (op_profiler) op_profiler->start();
        run_train_epoch(module, *train_loader, val_loader.get());
        if (op_profiler) op_profiler->stop();
        op_profiled_steps += global_step_ - steps_before;
      }
      if (interrupted_by_) break;
      bool validate = val_loader && validates_after_epoch(current_epoch_) &&
                      batches_to_run(options_.limit_val_batches(), *val_loader, "limit_val_batches") != 0;
      // An epoch without validation must not act on the last validation's values again.
      validated_this_epoch_ = validate;
      ending_unvalidated_epoch_ = !validate;
      if (validate) run_validation(module, *val_loader);
      module.on_train_epoch_end();
      send_to_loggers(end_epoch_metrics());
      ++current_epoch_;  // the checkpoint written below resumes at the next epoch
      batches_in_epoch_ = 0;
      step_schedulers("epoch", current_epoch_);
      {
        auto timer = profiler_->scope("callbacks.on_train_epoch_end");
        for (auto& cb : callbacks_) cb->on_train_epoch_end(*this, module);
      }
      // As Lightning: max_epochs and max_steps still end the run, a callback's stop waits.
      bool at_max_steps = options_.max_steps() > 0 && global_step_ >= options_.max_steps();
      if (should_stop && !at_max_steps &&
          (current_epoch_ < options_.min_epochs() || global_step_ < options_.min_steps()))
        should_stop = false;
      for (auto& logger : loggers_) logger->save();
      ending_unvalidated_epoch_ = false;
      if (stop_requested()) {
        bool more_to_do = !should_stop && (options_.max_epochs() < 0 || current_epoch_ < options_.max_epochs());
        if (more_to_do) break;  // the epoch's own checkpoint is the resumable one
        interrupted_by_ = 0;    // the run was finishing anyway: it ends as a complete run
      }
    }
    if (interrupted_by_) {
      write_interrupt_checkpoint(module);
    } else {
      module.on_train_end();
      module.on_fit_end();
      for (auto& cb : callbacks_) cb->on_fit_end(*this, module);
    }
    for (auto& logger : loggers_) logger->finalize();
  } catch (const std::exception& e) {
    if (op_profiler) op_profiler->stop();
    for (auto& cb : callbacks_) cb->on_exception(*this, module, e);
    for (auto& logger : loggers_) logger->finalize();
    strategy_->teardown();  // replicas released, intra-op threads given back
    throw;
  }
  strategy_->teardown();
  module.teardown(Stage::kFit);
  if (profiler_->enabled()) {
    std::string report =
        profiler_->report(std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start).count());
    std::cerr << "fit profile (wall time per action):\n" << report;
    if (!run_dir_.empty()) write_file_atomically((fs::path(run_dir_) / "fit-profiler.txt").string(), report);
  }
  if (op_profiler) {
    std::string report = op_profiler->report(op_profiled_steps);
    std::cerr << "fit operator profile (training epochs):\n" << report;
    if (!run_dir_.empty()) write_file_atomically((fs::path(run_dir_) / "fit-ops.txt").string(), report);
  }
}

}  // namespace j2v::engine
