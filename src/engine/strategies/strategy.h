#pragma once
// A Strategy decides where a training step runs and how the gradients of its batches are
// combined (after Lightning's strategies). The training-epoch loop is the same for all of
// them: it hands a strategy `devices()` batches per micro-step and the one function that
// runs a training step on a batch (forward, loss checks, backward); the strategy runs that
// function on its devices and combines their gradients into the module before the optimizer
// steps, then hands the stepped weights back to its devices.
//
//   single_device    the module itself, intra-op threads on every core
//   thread_replicas  one replica per CPU thread, single-threaded kernels, DDP semantics
//
// Multi-process strategies implement the same interface and report their rank and world size.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/data.h"
#include "engine/distributed/reduction.h"

namespace j2v::engine {

class Module;
class Trainer;

// Runs training_step on one batch of a module (the main module or a replica) and its backward
// pass; returns the loss (undefined when the module skipped the batch).
using TrainingStepFunction = std::function<torch::Tensor(Module& module, Batch& batch, int64_t batch_idx)>;

struct PredictionDevices {
  std::vector<Module*> modules;
  int intra_op_threads = 0;  // per module's thread; 0: the process's setting
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;

  // Once per process, before a run sets up its data and module: a multi-process strategy
  // starts or joins its processes here. Later runs of the same Trainer reuse them.
  virtual void setup_environment(Trainer& trainer) {}
  // Before the first step of a fit, once the module's weights are final (built, restored).
  virtual void setup(Module& module, Trainer& trainer) {}
  virtual void teardown() {}

  // Batches one micro-step takes: one per device.
  virtual int64_t devices() const { return 1; }
  // Intra-op threads for LibTorch's kernels, given the cores the process may use.
  virtual int intra_op_threads(int cores) const { return cores; }
  virtual bool supports_manual_optimization() const { return true; }
  // True when steps run on the module the optimizers hold (not on copies of it).
  virtual bool trains_module_itself() const { return true; }

  // Runs `step` on each batch (batch i on device i); returns the losses, one per batch.
  virtual std::vector<torch::Tensor> training_step(Module& module, const std::vector<Batch*>& batches,
                                                   int64_t first_batch_idx, const TrainingStepFunction& step) = 0;
  // Before an optimizer step: the devices' gradients, averaged, become the module's.
  virtual void reduce_gradients(Module& module) {}
  // After an optimizer step: every device gets the new weights.
  virtual void broadcast_weights(Module& module) {}

  // The modules batch prediction runs predict_step on, one thread each, with the module's
  // weights and in eval mode: the module itself unless the strategy has devices of its own.
  // `cores`: the cores the process may use. Released by teardown().
  virtual PredictionDevices prediction_devices(Module& module, Trainer& trainer, int cores) { return {{&module}, 0}; }

  // Among all processes of a run: which one this is, and how many there are.
  virtual int64_t global_rank() const { return 0; }
  virtual int64_t world_size() const { return 1; }
  bool is_global_zero() const { return global_rank() == 0; }
  // Collectives over the run's processes, in the same order on every rank; one process gets
  // its own values back. `what` names the collective in errors.
  virtual std::vector<double> all_reduce(const std::vector<double>& values, Reduction op, const char* what) {
    return values;
  }
  virtual std::vector<std::string> all_gather(const std::string& bytes, const char* what) { return {bytes}; }
};

class ThreadReplicaStrategy;

// One device: the module itself, on this thread. Chosen by `auto` on a machine with two or
// more cores, and when the module can replicate, it runs on one single-threaded replica per
// core instead, which uses small models' cores far better than intra-op threads splitting
// small kernels: it predicts on the replicas (rows come out the same and in the same order),
// and trains each batch split into one share per replica, their gradients averaged into the
// module before it steps. The batch size, the steps and the schedule stay those of one
// device; only the float rounding and the random draws (one stream per replica, seeded from
// the default generator) differ from a single-threaded step. Manual optimization runs on
// the module itself.
class SingleDeviceStrategy : public Strategy {
 public:
  explicit SingleDeviceStrategy(bool use_every_core = false);
  ~SingleDeviceStrategy() override;
  std::string name() const override { return "single_device"; }
  void setup(Module& module, Trainer& trainer) override;
  void teardown() override;
  bool trains_module_itself() const override { return !trainers_; }
  std::vector<torch::Tensor> training_step(Module& module, const std::vector<Batch*>& batches, int64_t first_batch_idx,
                                           const TrainingStepFunction& step) override;
  void reduce_gradients(Module& module) override;
  void broadcast_weights(Module& module) override;
  PredictionDevices prediction_devices(Module& module, Trainer& trainer, int cores) override;

 private:
  bool use_every_core_;
  std::unique_ptr<ThreadReplicaStrategy> trainers_;  // the replicas while training, one per core
  int intra_op_threads_before_ = 0;
  std::unique_ptr<Strategy> predictor_;  // the replicas while predicting
};

// trainer.strategy: auto (single_device for one device, using a replica per core to train and
// predict; thread_replicas for more) | single_device | thread_replicas | ddp (a process per device,
// on num_nodes machines). Throws std::invalid_argument naming the allowed values.
struct StrategySettings {
  int64_t devices = 1;
  int64_t num_nodes = 1;
  int64_t ddp_timeout_s = 1800;
};
std::unique_ptr<Strategy> make_strategy(const std::string& name, const StrategySettings& settings);
std::unique_ptr<Strategy> make_strategy(const std::string& name, int64_t devices);
const std::vector<std::string>& strategy_names();

}  // namespace j2v::engine
