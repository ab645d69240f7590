#pragma once
// The thread-replica strategy: N copies of a module, each on its own CPU thread with
// single-threaded kernels, each taking its own batch; gradients are averaged into the
// main module, which takes the optimizer step, and the new weights are copied back.
// Small models are latency-bound (one kernel is too small to split across cores), so this
// uses the cores far better than intra-op threads. Gradients are averaged like DDP.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "engine/module.h"

namespace j2v::engine {

class ThreadReplicas {
 public:
  ThreadReplicas(Module& main, int64_t devices, Trainer* trainer);
  int64_t size() const { return static_cast<int64_t>(replicas_.size()); }
  // Copies the main module's parameters and buffers into every replica.
  void sync_weights();
  // Runs fn(replica, index) on every replica, one thread each, and rethrows the first error.
  void run(const std::function<void(Module&, int64_t)>& fn);
  // main.grad += mean of the replicas' grads (over `used` replicas); replicas' grads are cleared.
  void reduce_gradients(int64_t used);

 private:
  Module& main_;
  std::vector<std::shared_ptr<Module>> replicas_;
  std::vector<std::vector<torch::Tensor>> replica_params_;
  std::vector<torch::Tensor> main_params_;
};

}  // namespace j2v::engine
