#pragma once
// Stops fit when a monitored metric has not improved by min_delta for `patience` epochs.
#include "base/options.h"
#include "base/parameters.h"
#include "engine/callback.h"

namespace j2v::engine {

struct EarlyStoppingOptions {
  static const Parameters<EarlyStoppingOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(std::string, monitor) = "loss/validate";
  J2V_ARG(std::string, mode) = "min";
  J2V_ARG(int64_t, patience) = 10;
  J2V_ARG(double, min_delta) = 0.0;
};

class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  std::string state_key() const override { return "EarlyStopping{" + options_.monitor() + "}"; }
  void on_train_epoch_end(Trainer&, Module&) override;
  nlohmann::json state_dict() const override { return {{"wait", wait_}, {"best", best_}, {"stopped_epoch", stopped_epoch_}}; }
  void load_state_dict(const nlohmann::json& s) override;
  int64_t stopped_epoch() const { return stopped_epoch_; }
  const EarlyStoppingOptions& options() const { return options_; }

 private:
  EarlyStoppingOptions options_;
  int64_t wait_ = 0;
  int64_t stopped_epoch_ = -1;
  double best_;
  bool warned_ = false;
};

}  // namespace j2v::engine
