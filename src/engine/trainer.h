#pragma once
// The Trainer runs fit / validate / test / predict for any Module and DataModule, after
// Lightning's Trainer: epochs and steps, gradient accumulation and clipping, callbacks,
// loggers, checkpoints and resuming.
#include <torch/torch.h>

#include <map>
#include <mutex>
#include <optional>

#include "engine/callback.h"
#include "engine/logger.h"
#include "engine/module.h"
#include "engine/options.h"

namespace j2v::engine {

// limit_*_batches: a fraction of the loader (1.0 = all) or a count of batches.
struct BatchLimit {
  double value = 1.0;
  bool is_fraction = true;
  static BatchLimit fraction(double f) { return {f, true}; }
  static BatchLimit count(int64_t n) { return {static_cast<double>(n), false}; }
  int64_t apply(int64_t available) const;  // available may be -1 (unknown)
};

struct TrainerOptions {
  J2V_ARG(int64_t, max_epochs) = 100;
  J2V_ARG(int64_t, max_steps) = -1;
  J2V_ARG(BatchLimit, limit_train_batches) = {};
  J2V_ARG(BatchLimit, limit_val_batches) = {};
  J2V_ARG(BatchLimit, limit_test_batches) = {};
  J2V_ARG(BatchLimit, limit_predict_batches) = {};
  J2V_ARG(bool, fast_dev_run) = false;  // one batch of each loop, no checkpoints or logs
  J2V_ARG(int64_t, accumulate_grad_batches) = 1;
  J2V_ARG(double, gradient_clip_val) = 0.0;  // clip the global grad norm; 0 = off
  J2V_ARG(std::optional<int64_t>, seed) = std::nullopt;
  J2V_ARG(int64_t, num_threads) = 0;  // 0 = all cores
  // Data-parallel replicas on CPU threads, each running single-threaded ops on its own batch
  // (DDP semantics: the effective batch is batch_size x devices). 1 = no replicas.
  J2V_ARG(int64_t, devices) = 1;
  J2V_ARG(std::string, default_root_dir) = "runs";
  J2V_ARG(bool, enable_progress_bar) = true;
  J2V_ARG(bool, enable_checkpointing) = true;
  J2V_ARG(bool, logger) = true;  // a CSVLogger in the run directory when no loggers are given
  J2V_ARG(int64_t, log_every_n_steps) = 50;
  J2V_ARG(std::vector<std::shared_ptr<Callback>>, callbacks) = {};
  J2V_ARG(std::vector<std::shared_ptr<Logger>>, loggers) = {};
};

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
  // Returns every row predict_step produced (the Writer callback streams them instead).
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
  int64_t num_training_batches() const { return num_training_batches_; }
  int64_t batch_index() const { return batch_index_; }
  int64_t num_loop_batches() const { return num_loop_batches_; }
  // Optimizer steps a fit will take at most (for schedulers), like Lightning's property.
  int64_t estimated_stepping_batches() const;
  const std::string& run_dir() const { return run_dir_; }
  std::vector<std::shared_ptr<Callback>>& callbacks() { return callbacks_; }
  std::vector<OptimizerConfig>& optimizers() { return optimizers_; }

  // Writes a complete, resumable checkpoint atomically.
  void save_checkpoint(const std::string& path, Module& module);
  // Resolves "last" / "best" / a path to a checkpoint file; throws CheckpointError.
  std::string resolve_checkpoint(const std::string& ckpt_path) const;

 private:
  DataModule* data_ = nullptr;  // during fit only
  void setup_run(Module& module, bool for_fit);
  void restore(const std::string& path, Module& module, bool full);
  void run_train_epoch(Module& module, DataLoader& loader);
  // One optimizer-step's worth of work on the replicas; returns false when the loader ran out.
  bool run_replica_step(Module& module, DataLoader& loader, int64_t& idx, int64_t limit);
  std::map<std::string, double> run_eval_loop(Module& module, DataLoader& loader, Stage stage);
  std::map<std::string, double> evaluate(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path,
                                         Stage stage);
  void optimizer_step(Module& module);
  void begin_epoch_metrics();
  std::map<std::string, double> end_epoch_metrics();
  void send_to_loggers(const std::map<std::string, double>& metrics);
  void set_num_threads() const;

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
  std::unique_ptr<class ThreadReplicas> replicas_;
  std::mutex log_mutex_;
  std::string run_dir_;
  std::map<std::string, double> callback_metrics_;
  std::map<std::string, double> progress_bar_metrics_;
  std::map<std::string, double> pending_step_metrics_;
  struct Accumulator {
    double sum = 0, weight = 0, extreme = 0;
    std::string reduce;
    bool prog_bar = false, logger = true;
  };
  std::map<std::string, Accumulator> epoch_accumulators_;
};

}  // namespace j2v::engine
