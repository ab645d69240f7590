#pragma once
// Stops fit once a wall-clock budget is spent (after Lightning's Timer), checked after every
// step or every epoch. The time already spent rides in checkpoints, so a resumed run has
// only what is left.
#include <chrono>

#include "engine/callback.h"
#include "base/options.h"

namespace j2v::engine {

struct TimerOptions {
  J2V_ARG(double, duration_seconds) = 0;  // > 0
  J2V_ARG(std::string, interval) = "step";  // step | epoch
};

// "DD:HH:MM:SS", "HH:MM:SS", "MM:SS" or a number of seconds.
double parse_duration(const std::string& text);

class Timer : public Callback {
 public:
  explicit Timer(TimerOptions options);
  std::string state_key() const override { return "Timer"; }
  void on_fit_start(Trainer&, Module&) override;
  void on_train_batch_end(Trainer&, Module&, const torch::Tensor&, Batch&, int64_t) override;
  void on_train_epoch_end(Trainer&, Module&) override;
  nlohmann::json state_dict() const override { return {{"elapsed_seconds", elapsed_seconds()}}; }
  void load_state_dict(const nlohmann::json& s) override { carried_seconds_ = s.value("elapsed_seconds", 0.0); }
  double elapsed_seconds() const;
  double remaining_seconds() const { return options_.duration_seconds() - elapsed_seconds(); }

 private:
  void check(Trainer& trainer);
  TimerOptions options_;
  double carried_seconds_ = 0;
  std::chrono::steady_clock::time_point start_;
  bool running_ = false;
};

}  // namespace j2v::engine
