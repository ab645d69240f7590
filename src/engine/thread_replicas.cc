#include "engine/thread_replicas.h"

#include <exception>
#include <mutex>
#include <thread>

namespace j2v::engine {

ThreadReplicas::ThreadReplicas(Module& main, int64_t devices, Trainer* trainer) : main_(main) {
  for (int64_t i = 0; i < devices; ++i) {
    auto replica = main.replicate();
    if (!replica)
      throw std::invalid_argument("trainer.devices > 1 needs a module that implements replicate(); this one does not");
    replica->trainer_ = trainer;
    replica->train();
    replicas_.push_back(replica);
  }
  main_params_ = main_.parameters();
  for (auto& r : replicas_) {
    replica_params_.push_back(r->parameters());
    if (replica_params_.back().size() != main_params_.size())
      throw std::logic_error("replicate() returned a module with different parameters");
  }
  sync_weights();
}

void ThreadReplicas::sync_weights() {
  torch::NoGradGuard no_grad;
  auto main_buffers = main_.buffers();
  for (size_t r = 0; r < replicas_.size(); ++r) {
    for (size_t i = 0; i < main_params_.size(); ++i) replica_params_[r][i].copy_(main_params_[i]);
    auto buffers = replicas_[r]->buffers();
    for (size_t i = 0; i < buffers.size() && i < main_buffers.size(); ++i) buffers[i].copy_(main_buffers[i]);
  }
}

void ThreadReplicas::run(const std::function<void(Module&, int64_t)>& fn) {
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&](int64_t r) {
    try {
      fn(*replicas_[r], r);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int64_t r = 1; r < size(); ++r) threads.emplace_back(work, r);
  work(0);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

void ThreadReplicas::reduce_gradients(int64_t used) {
  torch::NoGradGuard no_grad;
  double scale = 1.0 / static_cast<double>(std::max<int64_t>(used, 1));
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
