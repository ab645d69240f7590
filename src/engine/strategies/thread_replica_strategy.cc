#include "engine/strategies/thread_replica_strategy.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <mutex>

#include "base/fork_join_pool.h"
#include "base/thread_seed.h"
#include "engine/module.h"
#include "engine/plain_float.h"

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
  workers_.reset();
  replicas_.clear();
  replica_params_.clear();
  main_params_.clear();
  main_ = nullptr;
}

void ThreadReplicaStrategy::broadcast_weights(Module& main) {
  torch::NoGradGuard no_grad;
  auto main_buffers = main.buffers();
  for (size_t r = 0; r < replicas_.size(); ++r) {
    for (size_t i = 0; i < main_params_.size(); ++i) {
      auto& shared = replica_params_[r][i];
      const auto& own = main_params_[i];
      // set_data makes the replica's parameter a view of the module's memory while keeping
      // its own autograd state: its gradient stays the replica's.
      if (shared.data_ptr() != own.data_ptr() || shared.sizes() != own.sizes() || shared.dtype() != own.dtype() ||
          shared.device() != own.device())
        shared.set_data(own);
    }
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
  if (!workers_) workers_ = std::make_unique<ForkJoinPool>(replicas_.size() - 1);
  workers_->run(batches.size(), [&](size_t r) {
    ThreadSeedScope seeded(seeds[r]);
    losses[r] = step(*replicas_[r], *batches[r], first_batch_idx + static_cast<int64_t>(r));
  });
  replicas_used_ = std::max<int64_t>(replicas_used_, static_cast<int64_t>(batches.size()));
  return losses;
}

namespace {

// main = main + scale * (g_0 + g_1 + ...) (or scale * the sum where main had no gradient),
// replicas' gradients zeroed: one pass over raw memory, in the order the operators would add.
void reduce_plain(const std::vector<float*>& replica_grads, float* main_grad, bool main_had_grad, float scale,
                  int64_t n) {
  for (int64_t e = 0; e < n; ++e) {
    float sum = replica_grads[0][e];
    for (size_t r = 1; r < replica_grads.size(); ++r) sum += replica_grads[r][e];
    main_grad[e] = main_had_grad ? main_grad[e] + scale * sum : sum * scale;
  }
  for (float* g : replica_grads) std::memset(g, 0, sizeof(float) * static_cast<size_t>(n));
}

}  // namespace

void ThreadReplicaStrategy::reduce_gradients(Module&) {
  torch::NoGradGuard no_grad;
  double scale = 1.0 / static_cast<double>(std::max<int64_t>(replicas_used_, 1));
  replicas_used_ = 0;
  std::vector<float*> plain_grads;
  for (size_t i = 0; i < main_params_.size(); ++i) {
    auto& main_grad = main_params_[i].mutable_grad();
    int64_t n = main_params_[i].numel();
    bool plain = is_plain_float32(main_params_[i]) && (!main_grad.defined() || is_plain_float32(main_grad));
    plain_grads.clear();
    for (size_t r = 0; r < replicas_.size() && plain; ++r) {
      const auto& g = replica_params_[r][i].grad();
      if (!g.defined()) continue;
      if (!is_plain_float32(g) || g.numel() != n) plain = false;
      else plain_grads.push_back(g.data_ptr<float>());
    }
    if (plain) {
      if (plain_grads.empty()) continue;
      bool had_grad = main_grad.defined();
      if (!had_grad) main_grad = torch::empty_like(main_params_[i], torch::MemoryFormat::Contiguous);
      reduce_plain(plain_grads, main_grad.data_ptr<float>(), had_grad, static_cast<float>(scale), n);
      continue;
    }
    torch::Tensor sum;
    for (size_t r = 0; r < replicas_.size(); ++r) {
      auto& g = replica_params_[r][i].mutable_grad();
      if (!g.defined()) continue;
      sum = sum.defined() ? sum.add_(g) : g.clone();
      g.zero_();
    }
    if (!sum.defined()) continue;
    if (main_grad.defined()) main_grad.add_(sum, scale);
    else main_grad = sum.mul_(scale);
  }
}

}  // namespace j2v::engine
