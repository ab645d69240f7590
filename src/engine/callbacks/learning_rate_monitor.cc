#include "engine/callbacks/learning_rate_monitor.h"

#include <fmt/format.h>

#include "engine/trainer.h"

namespace j2v::engine {

const Parameters<LearningRateMonitorOptions>& LearningRateMonitorOptions::parameters() {
  static const auto declared =
      Parameters<LearningRateMonitorOptions>()
          .add("logging_interval", &LearningRateMonitorOptions::logging_interval_,
               "log every log_every_n_steps optimizer steps (step) or once per epoch (epoch)")
          .one_of({"step", "epoch"});
  return declared;
}

LearningRateMonitor::LearningRateMonitor(LearningRateMonitorOptions options) : options_(std::move(options)) {
  LearningRateMonitorOptions::parameters().check(options_, "LearningRateMonitor");
}

std::map<std::string, double> LearningRateMonitor::current_rates(Trainer& trainer) {
  std::map<std::string, double> rates;
  auto& configs = trainer.optimizers();
  for (size_t i = 0; i < configs.size(); ++i) {
    std::string name = configs[i].name.empty() ? fmt::format("optimizer_{}", i) : configs[i].name;
    auto& groups = configs[i].optimizer->param_groups();
    for (size_t g = 0; g < groups.size(); ++g) {
      std::string key = groups.size() == 1 ? "lr-" + name : fmt::format("lr-{}/pg{}", name, g + 1);
      rates[key] = groups[g].options().get_lr();
    }
  }
  return rates;
}

void LearningRateMonitor::log(Trainer& trainer) {
  if (trainer.options().fast_dev_run() || trainer.global_step() == last_logged_step_) return;
  last_logged_step_ = trainer.global_step();
  auto rates = current_rates(trainer);
  rates["epoch"] = static_cast<double>(trainer.current_epoch());
  for (auto& logger : trainer.loggers()) logger->log_metrics(rates, trainer.global_step());
}

void LearningRateMonitor::on_train_batch_start(Trainer& trainer, Module&, Batch&, int64_t) {
  if (options_.logging_interval() == "step" &&
      trainer.global_step() % std::max<int64_t>(trainer.options().log_every_n_steps(), 1) == 0)
    log(trainer);
}

void LearningRateMonitor::on_train_epoch_start(Trainer& trainer, Module&) {
  if (options_.logging_interval() == "epoch") log(trainer);
}

}  // namespace j2v::engine
