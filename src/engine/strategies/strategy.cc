#include "engine/strategies/strategy.h"

#include <fmt/format.h>

#include "engine/strategies/thread_replica_strategy.h"

namespace j2v::engine {

std::vector<torch::Tensor> SingleDeviceStrategy::training_step(Module& module, const std::vector<Batch*>& batches,
                                                               int64_t first_batch_idx,
                                                               const TrainingStepFunction& step) {
  std::vector<torch::Tensor> losses;
  for (size_t i = 0; i < batches.size(); ++i)
    losses.push_back(step(module, *batches[i], first_batch_idx + static_cast<int64_t>(i)));
  return losses;
}

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> names = {"auto", "single_device", "thread_replicas"};
  return names;
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, int64_t devices) {
  if (devices < 1) throw std::invalid_argument("trainer.devices must be >= 1");
  if (name == "auto") return make_strategy(devices > 1 ? "thread_replicas" : "single_device", devices);
  if (name == "single_device") {
    if (devices != 1)
      throw std::invalid_argument(fmt::format("trainer.strategy single_device runs on one device, but trainer.devices "
                                              "is {}: set devices to 1, or strategy to thread_replicas",
                                              devices));
    return std::make_unique<SingleDeviceStrategy>();
  }
  if (name == "thread_replicas") return std::make_unique<ThreadReplicaStrategy>(devices);
  throw std::invalid_argument(fmt::format("trainer.strategy: '{}' is not allowed (allowed: {})", name,
                                          fmt::join(strategy_names(), ", ")));
}

}  // namespace j2v::engine
