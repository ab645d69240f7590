#include "engine/module.h"

#include "engine/trainer.h"

namespace j2v::engine {

void Module::log(const std::string& name, double value, LogOptions options) {
  if (trainer_) trainer_->record_log(name, value, options);
}
void Module::log(const std::string& name, const torch::Tensor& value, LogOptions options) {
  log(name, value.detach().to(torch::kCPU).item<double>(), options);
}
void Module::log_dict(const std::map<std::string, double>& values, LogOptions options) {
  for (const auto& [k, v] : values) log(k, v, options);
}
void Module::manual_backward(const torch::Tensor& loss) {
  on_before_backward(loss);
  loss.backward();
  on_after_backward();
}
std::vector<torch::optim::Optimizer*> Module::optimizers() const {
  std::vector<torch::optim::Optimizer*> out;
  if (trainer_)
    for (auto& config : trainer_->optimizers()) out.push_back(config.optimizer.get());
  return out;
}
std::vector<Scheduler*> Module::lr_schedulers() const {
  std::vector<Scheduler*> out;
  if (trainer_)
    for (auto& config : trainer_->optimizers()) out.push_back(config.scheduler.get());
  return out;
}
void Module::optimizer_step(size_t i) {
  if (!trainer_ || i >= trainer_->optimizers().size())
    throw std::logic_error("optimizer_step: no optimizer " + std::to_string(i) + " (configure_optimizers returned " +
                           std::to_string(trainer_ ? trainer_->optimizers().size() : 0) + ")");
  auto& optimizer = *trainer_->optimizers()[i].optimizer;
  on_before_optimizer_step(optimizer);
  optimizer.step();
  trainer_->count_manual_step();
}
int64_t Module::current_epoch() const { return trainer_ ? trainer_->current_epoch() : 0; }
int64_t Module::global_step() const { return trainer_ ? trainer_->global_step() : 0; }

}  // namespace j2v::engine
