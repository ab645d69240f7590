#include "engine/strategies/strategy.h"

#include <fmt/format.h>

#include "engine/module.h"
#include "engine/strategies/ddp_strategy.h"
#include "engine/strategies/thread_replica_strategy.h"

namespace j2v::engine {

SingleDeviceStrategy::SingleDeviceStrategy(bool replicate_for_prediction)
    : replicate_for_prediction_(replicate_for_prediction) {}

SingleDeviceStrategy::~SingleDeviceStrategy() = default;

PredictionDevices SingleDeviceStrategy::prediction_devices(Module& module, Trainer& trainer, int cores) {
  if (!replicate_for_prediction_ || cores < 2 || !module.replicate()) return Strategy::prediction_devices(module, trainer, cores);
  predictor_ = std::make_unique<ThreadReplicaStrategy>(cores);
  return predictor_->prediction_devices(module, trainer, cores);
}

void SingleDeviceStrategy::teardown() {
  if (predictor_) predictor_->teardown();
  predictor_.reset();
}

std::vector<torch::Tensor> SingleDeviceStrategy::training_step(Module& module, const std::vector<Batch*>& batches,
                                                               int64_t first_batch_idx,
                                                               const TrainingStepFunction& step) {
  std::vector<torch::Tensor> losses;
  for (size_t i = 0; i < batches.size(); ++i)
    losses.push_back(step(module, *batches[i], first_batch_idx + static_cast<int64_t>(i)));
  return losses;
}

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> names = {"auto", "single_device", "thread_replicas", "ddp"};
  return names;
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, int64_t devices) {
  StrategySettings settings;
  settings.devices = devices;
  return make_strategy(name, settings);
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, const StrategySettings& settings) {
  int64_t devices = settings.devices;
  if (devices < 1) throw std::invalid_argument("trainer.devices must be >= 1");
  if (settings.num_nodes < 1) throw std::invalid_argument("trainer.num_nodes must be >= 1");
  if (settings.num_nodes > 1 && name != "ddp")
    throw std::invalid_argument(fmt::format(
        "trainer.num_nodes is {}: several machines need trainer.strategy ddp (got '{}')", settings.num_nodes, name));
  if (name == "ddp") return std::make_unique<DdpStrategy>(devices, settings.num_nodes, settings.ddp_timeout_s);
  if (name == "auto") {
    if (devices > 1) return make_strategy("thread_replicas", devices);
    return std::make_unique<SingleDeviceStrategy>(/*replicate_for_prediction=*/true);
  }
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
