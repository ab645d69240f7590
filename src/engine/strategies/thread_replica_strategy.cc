#include "engine/strategies/thread_replica_strategy.h"

#include <ATen/CPUGeneratorImpl.h>

#include <exception>
#include <mutex>
#include <thread>

#include "base/thread_seed.h"
#include "engine/module.h"

namespace j2v::engine {

ThreadReplicaStrategy::ThreadReplicaStrategy(int64_t devices) : devices_(devices) {
  if (devices < 1) throw std::invalid_argument("trainer.devices must be >= 1");
}

void ThreadReplicaStrategy::setup(Module& main, Trainer& trainer) {
  main_ = &main;
  replicas_.clear();
  replica_params_.clear();
  for (int64_t i = 0; i < devices_; ++i) {
    auto replica = main.replicate();
    if (!replica)
      throw std::invalid_argument("trainer.devices > 1 needs a module that implements replicate(); this one does not");
    replica->attach_trainer(&trainer);
    replica->set_text_predictions(main.text_predictions());
    replica->train();
    replicas_.push_back(replica);
  }
  main_params_ = main.parameters();
  for (auto& r : replicas_) {
    replica_params_.push_back(r->parameters());
    if (replica_params_.back().size() != main_params_.size())
      throw std::logic_error("replicate() returned a module with different parameters");
  }
  replicas_used_ = 0;
  broadcast_weights(main);
}

PredictionDevices ThreadReplicaStrategy::prediction_devices(Module& main, Trainer& trainer, int) {
  setup(main, trainer);
  PredictionDevices devices{{}, 1};
  for (auto& replica : replicas_) {
    replica->eval();
    devices.modules.push_back(replica.get());
  }
  return devices;
}

void ThreadReplicaStrategy::teardown() {
  replicas_.clear();
  replica_params_.clear();
  main_params_.clear();
  main_ = nullptr;
}

void ThreadReplicaStrategy::broadcast_weights(Module& main) {
  torch::NoGradGuard no_grad;
  auto main_buffers = main.buffers();
  for (size_t r = 0; r < replicas_.size(); ++r) {
    for (size_t i = 0; i < main_params_.size(); ++i) replica_params_[r][i].copy_(main_params_[i]);
    auto buffers = replicas_[r]->buffers();
    for (size_t i = 0; i < buffers.size() && i < main_buffers.size(); ++i) buffers[i].copy_(main_buffers[i]);
  }
}

std::vector<torch::Tensor> ThreadReplicaStrategy::training_step(Module&, const std::vector<Batch*>& batches,
                                                                int64_t first_batch_idx,
                                                                const TrainingStepFunction& step) {
  if (batches.size() > replicas_.size())
    throw std::logic_error("thread_replicas: more batches in one step than replicas");
  std::vector<torch::Tensor> losses(batches.size());
  // Each replica draws from its own stream, seeded here on this thread: the run repeats
  // however the threads interleave.
  std::vector<uint64_t> seeds(batches.size());
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    for (auto& seed : seeds) seed = generator.get<at::CPUGeneratorImpl>()->random64();
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&](size_t r) {
    try {
      ThreadSeedScope seeded(seeds[r]);
      losses[r] = step(*replicas_[r], *batches[r], first_batch_idx + static_cast<int64_t>(r));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (size_t r = 1; r < batches.size(); ++r) threads.emplace_back(work, r);
  if (!batches.empty()) work(0);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  replicas_used_ = std::max<int64_t>(replicas_used_, static_cast<int64_t>(batches.size()));
  return losses;
}

void ThreadReplicaStrategy::reduce_gradients(Module&) {
  torch::NoGradGuard no_grad;
  double scale = 1.0 / static_cast<double>(std::max<int64_t>(replicas_used_, 1));
  replicas_used_ = 0;
  for (size_t i = 0; i < main_params_.size(); ++i) {
    torch::Tensor sum;
    for (size_t r = 0; r < replicas_.size(); ++r) {
      auto& g = replica_params_[r][i].mutable_grad();
      if (!g.defined()) continue;
      sum = sum.defined() ? sum.add_(g) : g.clone();
      g.zero_();
    }
    if (!sum.defined()) continue;
    auto& main_grad = main_params_[i].mutable_grad();
    if (main_grad.defined()) main_grad.add_(sum, scale);
    else main_grad = sum.mul_(scale);
  }
}

}  // namespace j2v::engine
