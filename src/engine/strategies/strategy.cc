#include "engine/strategies/strategy.h"

#include <fmt/format.h>

#include "engine/module.h"
#include "engine/trainer.h"
#include "engine/strategies/ddp_strategy.h"
#include "engine/strategies/thread_replica_strategy.h"

namespace j2v::engine {

SingleDeviceStrategy::SingleDeviceStrategy(bool use_every_core) : use_every_core_(use_every_core) {}

SingleDeviceStrategy::~SingleDeviceStrategy() = default;

void SingleDeviceStrategy::setup(Module& module, Trainer& trainer) {
  teardown();  // a fit before that ended without its teardown
  int cores = trainer.cores();
  if (!use_every_core_ || cores < 2 || !module.automatic_optimization || !module.replicate()) return;
  trainers_ = std::make_unique<ThreadReplicaStrategy>(cores);
  trainers_->setup(module, trainer);
  // The replicas' kernels run single-threaded, as under thread_replicas; so does validation
  // on the module meanwhile.
  intra_op_threads_before_ = torch::get_num_threads();
  torch::set_num_threads(1);
}

PredictionDevices SingleDeviceStrategy::prediction_devices(Module& module, Trainer& trainer, int cores) {
  if (!use_every_core_ || cores < 2 || !module.replicate()) return Strategy::prediction_devices(module, trainer, cores);
  predictor_ = std::make_unique<ThreadReplicaStrategy>(cores);
  return predictor_->prediction_devices(module, trainer, cores);
}

void SingleDeviceStrategy::teardown() {
  if (trainers_) {
    trainers_->teardown();
    trainers_.reset();
    torch::set_num_threads(intra_op_threads_before_);
  }
  if (predictor_) predictor_->teardown();
  predictor_.reset();
}

namespace {
// The batch's loss from its shares' (each a mean over its rows): their mean weighted by rows.
torch::Tensor rows_weighted_loss(const std::vector<torch::Tensor>& losses, const std::vector<Batch*>& shares) {
  torch::Tensor sum;
  int64_t rows = 0;
  for (size_t i = 0; i < losses.size(); ++i) {
    if (!losses[i].defined()) continue;
    auto part = losses[i].detach() * static_cast<double>(shares[i]->size());
    sum = sum.defined() ? sum + part : part;
    rows += shares[i]->size();
  }
  return sum.defined() ? sum / static_cast<double>(std::max<int64_t>(rows, 1)) : sum;
}
}  // namespace

std::vector<torch::Tensor> SingleDeviceStrategy::training_step(Module& module, const std::vector<Batch*>& batches,
                                                               int64_t first_batch_idx,
                                                               const TrainingStepFunction& step) {
  std::vector<torch::Tensor> losses;
  for (size_t i = 0; i < batches.size(); ++i) {
    int64_t batch_idx = first_batch_idx + static_cast<int64_t>(i);
    if (!trainers_) {
      losses.push_back(step(module, *batches[i], batch_idx));
      continue;
    }
    auto parts = batches[i]->split(trainers_->devices());
    std::vector<Batch*> shares;
    for (auto& part : parts) shares.push_back(part.get());
    if (shares.empty()) shares.push_back(batches[i]);
    auto share_losses = trainers_->training_step(
        module, shares, batch_idx, [&](Module& m, Batch& share, int64_t) { return step(m, share, batch_idx); });
    losses.push_back(rows_weighted_loss(share_losses, shares));
  }
  return losses;
}

void SingleDeviceStrategy::reduce_gradients(Module& module) {
  if (trainers_) trainers_->reduce_gradients(module);
}

void SingleDeviceStrategy::broadcast_weights(Module& module) {
  if (trainers_) trainers_->broadcast_weights(module);
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
    return std::make_unique<SingleDeviceStrategy>(/*use_every_core=*/true);
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
