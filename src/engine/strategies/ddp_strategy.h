#pragma once
// Distributed data parallel over processes (Lightning's DDPStrategy), on PyTorch's c10d with
// Gloo: one process per device, on one machine or several. Each process holds the whole
// model and trains on its own share of every epoch's batches; after backward the gradients
// are averaged across the processes (bucketed all-reduce), so N processes of batch B train
// like one process of batch N x B, and every process takes the same optimizer step.
// Parameters a step left without a gradient on some ranks get the others' average; those
// that no rank used keep no gradient, as in one process.
//
// Where the processes come from: engine/distributed/launcher.h.
#include <chrono>
#include <memory>

#include "engine/distributed/launcher.h"
#include "engine/distributed/process_group.h"
#include "engine/strategies/strategy.h"

namespace j2v::engine {

class DdpStrategy : public Strategy {
 public:
  DdpStrategy(int64_t devices, int64_t num_nodes, int64_t timeout_s);
  ~DdpStrategy() override;
  std::string name() const override { return "ddp"; }
  void setup_environment(Trainer& trainer) override;
  // Refuses ranks whose models differ (a field state learned from different data), then
  // copies rank 0's parameters and buffers to every rank.
  void setup(Module& module, Trainer& trainer) override;
  int64_t devices() const override { return 1; }  // per process
  // The machine's cores split between the processes on it.
  int intra_op_threads(int cores) const override;
  std::vector<torch::Tensor> training_step(Module& module, const std::vector<Batch*>& batches, int64_t first_batch_idx,
                                           const TrainingStepFunction& step) override;
  void reduce_gradients(Module& module) override;

  int64_t global_rank() const override { return layout_.rank; }
  int64_t world_size() const override { return layout_.world_size; }

  std::vector<double> all_reduce(const std::vector<double>& values, Reduction op, const char* what) override;
  std::vector<std::string> all_gather(const std::string& bytes, const char* what) override;

 private:
  std::chrono::seconds timeout_;
  RankLayout layout_;
  bool environment_ready_ = false;
  std::unique_ptr<RankLauncher> launcher_;
  std::unique_ptr<ProcessGroup> group_;  // none for a world of one
};

}  // namespace j2v::engine
