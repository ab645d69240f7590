#include "engine/callbacks/early_stopping.h"

#include <cmath>
#include <iostream>
#include <limits>

#include "engine/trainer.h"

namespace j2v::engine {

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.mode() != "min" && options_.mode() != "max")
    throw std::invalid_argument("early_stopping.mode: '" + options_.mode() + "' is not allowed (allowed: min, max)");
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
  wait_ = s.value("wait", int64_t{0});
  if (s.contains("best") && s["best"].is_number()) best_ = s["best"].get<double>();
  stopped_epoch_ = s.value("stopped_epoch", int64_t{-1});
}

}  // namespace j2v::engine
