#pragma once
// The thread-replica strategy: N copies of a module, each on its own CPU thread with
// single-threaded kernels, each taking its own batch; gradients are averaged into the
// main module, which takes the optimizer step. The replicas' parameters share the main
// module's memory (each keeps its own gradient), so the new weights need no copying back.
// Small models are latency-bound (one kernel is too small to split across cores), so this
// uses the cores far better than intra-op threads. Gradients are averaged like DDP: N
// replicas x batch B train like one device with batch N x B.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "base/fork_join_pool.h"
#include "engine/strategies/strategy.h"

namespace j2v::engine {

class ThreadReplicaStrategy : public Strategy {
 public:
  explicit ThreadReplicaStrategy(int64_t devices);
  std::string name() const override { return "thread_replicas"; }
  void setup(Module& module, Trainer& trainer) override;
  void teardown() override;
  int64_t devices() const override { return devices_; }
  int intra_op_threads(int) const override { return 1; }
  bool supports_manual_optimization() const override { return false; }
  bool trains_module_itself() const override { return false; }
  std::vector<torch::Tensor> training_step(Module& module, const std::vector<Batch*>& batches, int64_t first_batch_idx,
                                           const TrainingStepFunction& step) override;
  // main.grad += mean over the replicas that ran since the last reduction; replicas' grads cleared.
  void reduce_gradients(Module& module) override;
  // Copies the main module's buffers into every replica; parameters are shared, and shared
  // again if the module's moved to new memory (a change of dtype or device) since setup.
  void broadcast_weights(Module& module) override;
  // Fresh replicas with the module's weights, in eval mode: one prediction thread each.
  PredictionDevices prediction_devices(Module& module, Trainer& trainer, int cores) override;

 private:
  int64_t devices_;
  Module* main_ = nullptr;
  std::vector<std::shared_ptr<Module>> replicas_;
  std::vector<std::vector<torch::Tensor>> replica_params_;
  std::vector<torch::Tensor> main_params_;
  int64_t replicas_used_ = 0;  // the most replicas that ran in one micro-step since the last reduction
  std::unique_ptr<ForkJoinPool> workers_;  // the replicas' threads, made at the first step, kept until teardown
};

}  // namespace j2v::engine
