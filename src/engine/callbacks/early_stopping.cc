#include "engine/callbacks/early_stopping.h"
#include "base/json_read.h"

#include <cmath>
#include <iostream>
#include <limits>

#include "engine/trainer.h"

namespace j2v::engine {

const Parameters<EarlyStoppingOptions>& EarlyStoppingOptions::parameters() {
  static const auto declared =
      Parameters<EarlyStoppingOptions>()
          .add("monitor", &EarlyStoppingOptions::monitor_, "metric watched for improvement")
          .add("mode", &EarlyStoppingOptions::mode_, "whether a lower or a higher monitored value is better")
          .one_of({"min", "max"})
          .add("patience", &EarlyStoppingOptions::patience_, "validation checks without improvement before stopping")
          .at_least(0)
          .add("min_delta", &EarlyStoppingOptions::min_delta_, "smallest change that counts as an improvement")
          .at_least(0);
  return declared;
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  EarlyStoppingOptions::parameters().check(options_, "early_stopping");
  best_ = options_.mode() == "min" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

void EarlyStopping::on_train_epoch_end(Trainer& trainer, Module&) {
  if (trainer.metric_is_stale(options_.monitor())) return;  // an epoch without validation
  auto it = trainer.callback_metrics().find(options_.monitor());
  if (it == trainer.callback_metrics().end()) {
    if (!warned_) std::cerr << "warning: early_stopping.monitor '" << options_.monitor() << "' was not logged; early stopping is off\n";
    warned_ = true;
    return;
  }
  double v = it->second;
  bool improved = options_.mode() == "min" ? v < best_ - options_.min_delta() : v > best_ + options_.min_delta();
  if (improved && std::isfinite(v)) {
    best_ = v;
    wait_ = 0;
  } else if (++wait_ >= options_.patience()) {
    stopped_epoch_ = trainer.current_epoch() - 1;
    trainer.should_stop = true;
  }
}

void EarlyStopping::load_state_dict(const nlohmann::json& s) {
  wait_ = read_integer(s, "wait", 0);
  if (s.contains("best") && s["best"].is_number()) best_ = s["best"].get<double>();
  stopped_epoch_ = read_integer(s, "stopped_epoch", -1);
}

}  // namespace j2v::engine
