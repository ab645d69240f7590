#pragma once
// Logs each optimizer's learning rate (after Lightning's LearningRateMonitor) as
// "lr-<name>" ("lr-<name>/pg<k>" when it has several parameter groups), every
// log_every_n_steps optimizer steps or once per epoch.
#include "base/options.h"
#include "base/parameters.h"
#include "engine/callback.h"

namespace j2v::engine {

struct LearningRateMonitorOptions {
  static const Parameters<LearningRateMonitorOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(std::string, logging_interval) = "step";  // step | epoch
};

class LearningRateMonitor : public Callback {
 public:
  explicit LearningRateMonitor(LearningRateMonitorOptions options = {});
  std::string state_key() const override { return "LearningRateMonitor"; }
  void on_train_batch_start(Trainer&, Module&, Batch&, int64_t) override;
  void on_train_epoch_start(Trainer&, Module&) override;
  // The rates as logged, by name: public for tests and for the progress of a run.
  static std::map<std::string, double> current_rates(Trainer& trainer);
  const LearningRateMonitorOptions& options() const { return options_; }

 private:
  void log(Trainer& trainer);
  LearningRateMonitorOptions options_;
  int64_t last_logged_step_ = -1;
};

}  // namespace j2v::engine
