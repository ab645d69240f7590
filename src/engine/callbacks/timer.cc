#include "engine/callbacks/timer.h"

#include <fmt/format.h>

#include <iostream>
#include <sstream>
#include <vector>

#include "engine/trainer.h"

namespace j2v::engine {

double parse_duration(const std::string& text) {
  auto fail = [&] {
    return std::invalid_argument("Timer.duration: '" + text +
                                 "' is not a duration (\"DD:HH:MM:SS\", \"HH:MM:SS\", \"MM:SS\" or seconds)");
  };
  std::vector<double> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ':')) {
    try {
      size_t used = 0;
      double v = std::stod(part, &used);
      if (used != part.size() || v < 0) throw fail();
      parts.push_back(v);
    } catch (const std::invalid_argument&) {
      throw fail();
    } catch (const std::out_of_range&) {
      throw fail();
    }
  }
  if (parts.empty() || parts.size() > 4) throw fail();
  static const double kUnits[] = {1, 60, 3600, 86400};
  double seconds = 0;
  for (size_t i = 0; i < parts.size(); ++i) seconds += parts[parts.size() - 1 - i] * kUnits[i];
  return seconds;
}

Timer::Timer(TimerOptions options) : options_(std::move(options)) {
  if (!(options_.duration_seconds() > 0)) throw std::invalid_argument("Timer.duration must be positive");
  if (options_.interval() != "step" && options_.interval() != "epoch")
    throw std::invalid_argument("Timer.interval: '" + options_.interval() + "' is not allowed (allowed: step, epoch)");
}

double Timer::elapsed_seconds() const {
  double now = running_ ? std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() : 0;
  return carried_seconds_ + now;
}

void Timer::on_fit_start(Trainer&, Module&) {
  start_ = std::chrono::steady_clock::now();
  running_ = true;
}

void Timer::check(Trainer& trainer) {
  if (trainer.should_stop || elapsed_seconds() < options_.duration_seconds()) return;
  trainer.should_stop = true;
  std::cerr << fmt::format("Timer: the time budget of {:.0f} s is spent ({:.1f} s); stopping after epoch {}, step {}\n",
                           options_.duration_seconds(), elapsed_seconds(), trainer.current_epoch(), trainer.global_step());
}

void Timer::on_train_batch_end(Trainer& trainer, Module&, const torch::Tensor&, Batch&, int64_t) {
  if (options_.interval() == "step") check(trainer);
}

void Timer::on_train_epoch_end(Trainer& trainer, Module&) { check(trainer); }

}  // namespace j2v::engine
