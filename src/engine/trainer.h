#pragma once
// The Trainer runs fit / validate / test / predict for any Module and DataModule, after
// Lightning's Trainer: epochs and steps, gradient accumulation and clipping, callbacks,
// loggers, checkpoints and resuming. Its parts live where Lightning keeps them:
//   loops/fit_loop.cc             fit: setup, resume, epochs
//   loops/training_epoch_loop.cc  one epoch: micro-steps through the strategy, in-epoch validation
//   loops/optimization.cc         the training-step function, optimizer steps, clipping, schedulers
//   loops/evaluation_loop.cc      validate and test
//   loops/prediction_loop.cc      predict
//   connectors/checkpoint_connector.cc  last/best, saving and restoring, interrupted fits
//   connectors/logger_connector.cc      Module::log, epoch means, loggers
//   connectors/callback_connector.cc    the default callbacks and loggers of a fit
//   strategies/                         where steps run: single device, thread replicas
#include <torch/torch.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "engine/callback.h"
#include "engine/logger.h"
#include "engine/module.h"
#include "engine/strategies/strategy.h"
#include "engine/trainer_options.h"

namespace j2v::engine {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Trainer {
 public:
  explicit Trainer(TrainerOptions options = {});
  ~Trainer();

  // ckpt_path: a file, or "last" / "best" in default_root_dir's newest run; resumes fit.
  void fit(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path = std::nullopt);
  std::map<std::string, double> validate(Module& module, DataModule& data,
                                         const std::optional<std::string>& ckpt_path = std::nullopt);
  std::map<std::string, double> test(Module& module, DataModule& data,
                                     const std::optional<std::string>& ckpt_path = std::nullopt);
  // Returns every row predict_step produced (the PredictionWriter callback streams them instead).
  nlohmann::json predict(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path = std::nullopt,
                         bool return_predictions = true);

  // Called by Module::log.
  void record_log(const std::string& name, double value, const LogOptions& options);

  // State visible to modules and callbacks.
  const TrainerOptions& options() const { return options_; }
  int64_t current_epoch() const { return current_epoch_; }
  int64_t global_step() const { return global_step_; }
  Stage stage() const { return stage_; }
  bool training() const { return in_training_step_; }
  bool should_stop = false;
  const std::map<std::string, double>& callback_metrics() const { return callback_metrics_; }
  const std::map<std::string, double>& progress_bar_metrics() const { return progress_bar_metrics_; }
  // True for a validation metric in an epoch that did not validate (check_val_every_n_epoch):
  // callbacks that monitor it (checkpoints, early stopping) have nothing new to judge.
  bool metric_is_stale(const std::string& name) const {
    return ending_unvalidated_epoch_ && last_validation_metrics_.count(name) > 0;
  }
  int64_t num_training_batches() const { return num_training_batches_; }
  int64_t batch_index() const { return batch_index_; }
  int64_t num_loop_batches() const { return num_loop_batches_; }
  // Optimizer steps a fit will take at most (for schedulers), like Lightning's property.
  int64_t estimated_stepping_batches() const;
  const std::string& run_dir() const { return run_dir_; }
  const std::vector<std::shared_ptr<Logger>>& loggers() const { return loggers_; }
  class Profiler& profiler() { return *profiler_; }
  // Set when fit stopped on SIGINT/SIGTERM: the signal and the resumable checkpoint written.
  int interrupted_by() const { return interrupted_by_; }
  const std::string& interrupt_checkpoint() const { return interrupt_checkpoint_; }
  // Replaces Module::configure_optimizers (the CLI builds optimizers from the config this way).
  void set_optimizer_factory(std::function<std::vector<OptimizerConfig>(Module&)> factory) {
    optimizer_factory_ = std::move(factory);
  }
  // For manual optimization: counts an optimizer step taken by the module itself.
  void count_manual_step() { ++global_step_; }
  std::vector<std::shared_ptr<Callback>>& callbacks() { return callbacks_; }
  Strategy& strategy() { return *strategy_; }
  // Among the processes of a data-parallel run (0 and 1 in a single process).
  int64_t global_rank() const;
  int64_t world_size() const;
  int cores() const;  // trainer.num_threads, or the cores this process may use
  bool is_global_zero() const { return global_rank() == 0; }
  std::vector<OptimizerConfig>& optimizers() { return optimizers_; }

  // Writes a complete, resumable checkpoint atomically.
  void save_checkpoint(const std::string& path, Module& module);
  // Loads only the module's weights from a checkpoint (e.g. rolling back to the best one).
  void load_weights(const std::string& path, Module& module);
  // Resolves "last" / "best" / a path to a checkpoint file; throws CheckpointError.
  std::string resolve_checkpoint(const std::string& ckpt_path) const;

 private:
  DataModule* data_ = nullptr;  // during fit only
  void setup_run(Module& module, bool for_fit);
  void attach_default_callbacks();
  void restore(const std::string& path, Module& module, bool full);
  // Reads only the module's own state (schema, vocabularies) so the module can build itself
  // before data is set up and weights are loaded.
  void preload_module_state(const std::string& path, Module& module);
  void run_train_epoch(Module& module, DataLoader& loader, DataLoader* val_loader);
  // The one training-step function every strategy runs on its devices: training_step under
  // the run's precision, the loss checked, backward (scaled for accumulation). Manual
  // optimization: training_step only. Returns the loss, undefined when the module skipped it.
  // zero_grad_first: the step opens an accumulation window; the optimizers' gradients are
  // zeroed after training_step and before backward.
  torch::Tensor run_training_step(Module& module, Batch& batch, int64_t idx, int64_t accumulate, bool zero_grad_first);
  void run_validation(Module& module, DataLoader& loader);
  bool stop_requested();
  bool validates_after_epoch(int64_t epoch) const;  // check_val_every_n_epoch
  void write_interrupt_checkpoint(Module& module);
  std::map<std::string, double> run_eval_loop(Module& module, DataLoader& loader, Stage stage);
  std::map<std::string, double> evaluate(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path,
                                         Stage stage);
  void optimizer_step(Module& module);
  void clip_gradients(Module& module);
  void zero_grad(Module& module);
  void step_schedulers(const std::string& interval, int64_t counter);
  void begin_epoch_metrics();
  std::map<std::string, double> end_epoch_metrics();
  void send_to_loggers(const std::map<std::string, double>& metrics);
  void set_num_threads() const;
  void apply_float32_matmul_precision();  // process-wide, at each run's start (see precision.h)

  TrainerOptions options_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::vector<std::shared_ptr<Logger>> loggers_;
  std::vector<OptimizerConfig> optimizers_;
  Stage stage_ = Stage::kFit;
  int64_t current_epoch_ = 0;
  int64_t global_step_ = 0;
  int64_t num_training_batches_ = 0;
  int64_t batch_index_ = 0;
  int64_t num_loop_batches_ = 0;
  bool in_training_step_ = false;
  std::unique_ptr<Strategy> strategy_;
  std::mutex log_mutex_;
  std::string run_dir_;
  std::map<std::string, double> callback_metrics_;
  std::map<std::string, double> progress_bar_metrics_;
  std::map<std::string, double> pending_step_metrics_;
  struct Accumulator {
    double sum = 0, weight = 0, extreme = 0;
    std::string reduce;
    bool prog_bar = false, logger = true;
    bool sync_dist = false;  // reduced across ranks when the epoch ends
  };
  void sync_epoch_accumulators();
  std::map<std::string, Accumulator> epoch_accumulators_;
  nlohmann::json accumulators_json() const;
  void load_accumulators(const nlohmann::json& state);
  std::function<std::vector<OptimizerConfig>(Module&)> optimizer_factory_;
  std::unique_ptr<class Profiler> profiler_;
  bool mixed_precision_ = false;  // trainer.precision is bf16-mixed
  bool warned_matmul_precision_ = false;
  int64_t resume_batch_ = 0;        // batches of current_epoch_ already trained (a mid-epoch resume)
  int64_t batches_in_epoch_ = 0;    // batches of current_epoch_ trained so far
  int interrupted_by_ = 0;
  std::string interrupt_checkpoint_;
  torch::Tensor epoch_start_rng_;                  // the generator when the current epoch began
  torch::Tensor resume_rng_, resume_epoch_rng_;    // from a mid-epoch checkpoint, used once
  std::set<std::string> last_validation_metrics_;  // names the last validation logged
  bool ending_unvalidated_epoch_ = false;          // between an epoch without validation and its end
  bool validated_this_epoch_ = false;
  int64_t validations_run_ = 0;
};

}  // namespace j2v::engine
