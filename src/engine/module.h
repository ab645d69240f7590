#pragma once
// The engine's Module, after LightningModule: a torch::nn::Module that says how to run a
// step of each loop and how to optimise itself. The Trainer owns the loops.
#include <torch/torch.h>

#include <atomic>
#include <optional>

#include "base/value_type.h"
#include "engine/data.h"
#include "engine/scheduler.h"

namespace j2v::engine {

class Trainer;

struct LogOptions {
  std::optional<bool> on_step;   // default: true inside training_step, false elsewhere
  std::optional<bool> on_epoch;  // default: false inside training_step, true elsewhere
  bool prog_bar = false;
  bool logger = true;
  std::string reduce_fx = "mean";  // mean | sum | max | min
  // In a data-parallel run, the epoch value over every rank's rows (reduced with reduce_fx)
  // rather than this rank's own. Applies to values logged in training steps; evaluation runs
  // every row on every rank, so its values are already the whole run's.
  bool sync_dist = false;
  LogOptions& sync(bool v = true) { sync_dist = v; return *this; }
  LogOptions& step(bool v) { on_step = v; return *this; }
  LogOptions& epoch(bool v) { on_epoch = v; return *this; }
  LogOptions& progress_bar(bool v = true) { prog_bar = v; return *this; }
  LogOptions& reduce(std::string v) { reduce_fx = std::move(v); return *this; }
};

struct OptimizerConfig {
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  std::shared_ptr<Scheduler> scheduler;  // optional
  std::string interval = "step";         // step | epoch
  int64_t frequency = 1;
  // A scheduler that reacts to a metric (ReduceLROnPlateau) is stepped with this logged value.
  std::string monitor;
  std::string name;  // shown by LearningRateMonitor; default "optimizer_<i>"
};

// Parameters an optimizer treats alike. Every optimizer the engine builds, from a module's own
// configure_optimizers or from the config's `optimizer:`, gets a module's groups: those with
// weight_decay false are never decayed (norms, biases, embeddings' frequencies...).
struct ParameterGroup {
  std::vector<torch::Tensor> params;
  bool weight_decay = true;
};

class Module : public torch::nn::Module {
 public:
  ~Module() override = default;

  // Steps. training_step returns the loss to minimise.
  virtual torch::Tensor training_step(Batch& batch, int64_t batch_idx) = 0;
  virtual void validation_step(Batch& batch, int64_t batch_idx) {}
  virtual void test_step(Batch& batch, int64_t batch_idx) {}
  // One JSON value per row of the batch, in row order.
  virtual nlohmann::json predict_step(Batch& batch, int64_t batch_idx) {
    throw std::logic_error("this module does not implement predict_step");
  }
  virtual std::vector<OptimizerConfig> configure_optimizers() = 0;
  // How optimizers group this module's parameters; default: one group, all decayed.
  virtual std::vector<ParameterGroup> parameter_groups() { return {{parameters(), true}}; }

  // Hooks, called by the Trainer in Lightning's order.
  virtual void setup(Stage stage) {}
  virtual void teardown(Stage stage) {}
  virtual void on_fit_start() {}
  virtual void on_fit_end() {}
  virtual void on_train_epoch_start() {}
  virtual void on_train_epoch_end() {}
  virtual void on_validation_epoch_start() {}
  virtual void on_validation_epoch_end() {}
  virtual void on_test_epoch_start() {}
  virtual void on_test_epoch_end() {}
  virtual void on_predict_epoch_start() {}
  virtual void on_predict_epoch_end() {}
  virtual void on_train_start() {}
  virtual void on_train_end() {}
  virtual void on_validation_start() {}
  virtual void on_validation_end() {}
  virtual void on_train_batch_start(Batch& batch, int64_t batch_idx) {}
  virtual void on_train_batch_end(const torch::Tensor& loss, Batch& batch, int64_t batch_idx) {}
  virtual void on_before_optimizer_step(torch::optim::Optimizer& optimizer) {}
  virtual void on_before_zero_grad(torch::optim::Optimizer& optimizer) {}
  virtual void on_before_backward(const torch::Tensor& loss) {}
  virtual void on_after_backward() {}
  // Extra state to keep in a checkpoint beside the weights (schema, vocabularies, ...).
  virtual void on_save_checkpoint(nlohmann::json& checkpoint) {}
  virtual void on_load_checkpoint(const nlohmann::json& checkpoint) {}
  // A copy with the same structure (weights are synced by the Trainer), for the
  // thread-replica strategy (trainer.devices > 1). Modules that return nullptr train on one.
  virtual std::shared_ptr<Module> replicate() { return nullptr; }
  // The columns of predict_step's rows, for typed output such as Parquet (empty: the writer
  // takes the types from the first row).
  virtual std::vector<OutputColumn> predict_output_types() const { return {}; }
  // Set by a consumer that only prints rows as JSON text (a JSON Lines prediction writer
  // without a postprocessor, for the length of its predict run; the HTTP server's replicas):
  // predict_step may then return a row's values as raw_json() text (base/raw_json.h), which
  // the consumer copies as it is, instead of trees it would print and free. A module that
  // ignores it stays correct.
  void set_text_predictions(bool text) { text_predictions_ = text; }
  bool text_predictions() const { return text_predictions_; }

  void log(const std::string& name, double value, LogOptions options = {});
  void log(const std::string& name, const torch::Tensor& value, LogOptions options = {});
  void log_dict(const std::map<std::string, double>& values, LogOptions options = {});

  // Stored in every checkpoint, like LightningModule.save_hyperparameters().
  void save_hyperparameters(nlohmann::json hparams) { hparams_ = std::move(hparams); }
  void save_hyperparameters(const std::string& name, nlohmann::json value) { hparams_[name] = std::move(value); }
  const nlohmann::json& hparams() const { return hparams_; }

  // Manual optimization (set automatic_optimization = false in the constructor): the Trainer
  // only calls training_step; the module calls manual_backward and steps its optimizers().
  bool automatic_optimization = true;
  void manual_backward(const torch::Tensor& loss);
  std::vector<torch::optim::Optimizer*> optimizers() const;
  std::vector<Scheduler*> lr_schedulers() const;
  // Steps optimizer i and counts it in global_step, as Lightning's optimizer.step() does.
  void optimizer_step(size_t i);

  Trainer* trainer() const { return trainer_; }
  // The Trainer (or a strategy, for its replicas) attaches itself for the length of a run.
  void attach_trainer(Trainer* trainer) { trainer_ = trainer; }
  // True while a Trainer runs fit, validate, test or predict on this module: what must not
  // change its structure then (a schema mutation) checks this and refuses.
  bool running() const { return running_ > 0; }
  // Marks the module running for its lifetime; the Trainer holds one per run.
  class RunningScope {
   public:
    explicit RunningScope(Module& module) : module_(module) { ++module_.running_; }
    ~RunningScope() { --module_.running_; }
    RunningScope(const RunningScope&) = delete;
    RunningScope& operator=(const RunningScope&) = delete;

   private:
    Module& module_;
  };
  int64_t current_epoch() const;
  int64_t global_step() const;

 private:
  Trainer* trainer_ = nullptr;
  std::atomic<int> running_{0};
  bool text_predictions_ = false;
  nlohmann::json hparams_ = nlohmann::json::object();
};

}  // namespace j2v::engine
