// What modules log: step values, epoch means (weighted by batch rows), what the progress bar
// and callbacks see, and what goes to the loggers (Lightning's _LoggerConnector).
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "engine/profiler.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

using namespace detail;

nlohmann::json Trainer::accumulators_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, acc] : epoch_accumulators_)
    out[name] = {{"sum", acc.sum}, {"weight", acc.weight}, {"extreme", acc.extreme}, {"reduce", acc.reduce},
                 {"prog_bar", acc.prog_bar}, {"logger", acc.logger}};
  return out;
}

void Trainer::load_accumulators(const nlohmann::json& state) {
  epoch_accumulators_.clear();
  for (const auto& [name, a] : state.items()) {
    Accumulator acc;
    acc.sum = a.value("sum", 0.0);
    acc.weight = a.value("weight", 0.0);
    acc.extreme = a.value("extreme", 0.0);
    acc.reduce = a.value("reduce", "mean");
    acc.prog_bar = a.value("prog_bar", false);
    acc.logger = a.value("logger", true);
    epoch_accumulators_[name] = acc;
  }
}

void Trainer::record_log(const std::string& name, double value, const LogOptions& options) {
  std::lock_guard<std::mutex> lock(log_mutex_);
  bool on_step = options.on_step.value_or(in_training_step_);
  bool on_epoch = options.on_epoch.value_or(!in_training_step_);
  std::string step_name = (on_step && on_epoch) ? name + "_step" : name;
  std::string epoch_name = (on_step && on_epoch) ? name + "_epoch" : name;
  if (on_step) {
    if (options.logger) pending_step_metrics_[step_name] = value;
    if (options.prog_bar) progress_bar_metrics_[step_name] = value;
    callback_metrics_[step_name] = value;
  }
  if (on_epoch) {
    auto& acc = epoch_accumulators_[epoch_name];
    if (acc.weight == 0) acc.extreme = value;
    acc.reduce = options.reduce_fx;
    acc.prog_bar = options.prog_bar;
    acc.logger = options.logger;
    acc.sync_dist = acc.sync_dist || (options.sync_dist && in_training_step_);
    double w = static_cast<double>(logging_batch_size());
    if (options.reduce_fx == "sum") acc.sum += value;
    else if (options.reduce_fx == "max") acc.extreme = std::max(acc.extreme, value);
    else if (options.reduce_fx == "min") acc.extreme = std::min(acc.extreme, value);
    else acc.sum += value * w;
    acc.weight += w;
    if (options.prog_bar) progress_bar_metrics_[epoch_name] = acc.reduce == "mean" ? acc.sum / acc.weight : value;
  }
}

void Trainer::begin_epoch_metrics() { epoch_accumulators_.clear(); }

void Trainer::sync_epoch_accumulators() {
  std::vector<std::string> names;
  for (const auto& [name, acc] : epoch_accumulators_)
    if (acc.sync_dist) names.push_back(name);
  // Collectives pair up by order: every rank must reduce the same values.
  auto all = strategy_->all_gather(fmt::format("{}", fmt::join(names, "\n")), "comparing the logged metrics");
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw std::runtime_error(fmt::format(
          "rank {} logged other values with sync_dist this epoch than rank 0 ('{}' against '{}'): log the same names "
          "on every rank",
          r, all[r], all[0]));
  if (names.empty()) return;
  std::vector<double> sums, highs, lows;
  for (const auto& name : names) {
    const auto& acc = epoch_accumulators_.at(name);
    sums.push_back(acc.sum);
    sums.push_back(acc.weight);
    highs.push_back(acc.reduce == "max" ? acc.extreme : -std::numeric_limits<double>::infinity());
    lows.push_back(acc.reduce == "min" ? acc.extreme : std::numeric_limits<double>::infinity());
  }
  sums = strategy_->all_reduce(sums, Reduction::kSum, "summing the logged metrics");
  highs = strategy_->all_reduce(highs, Reduction::kMax, "the logged metrics' maxima");
  lows = strategy_->all_reduce(lows, Reduction::kMin, "the logged metrics' minima");
  for (size_t i = 0; i < names.size(); ++i) {
    auto& acc = epoch_accumulators_.at(names[i]);
    acc.sum = sums[2 * i];
    acc.weight = sums[2 * i + 1];
    if (acc.reduce == "max") acc.extreme = highs[i];
    if (acc.reduce == "min") acc.extreme = lows[i];
  }
}

std::map<std::string, double> Trainer::end_epoch_metrics() {
  if (world_size() > 1) sync_epoch_accumulators();
  std::map<std::string, double> logged;
  for (auto& [name, acc] : epoch_accumulators_) {
    double v = acc.reduce == "sum" ? acc.sum : (acc.reduce == "max" || acc.reduce == "min") ? acc.extreme
                                                                                            : acc.sum / std::max(acc.weight, 1e-12);
    callback_metrics_[name] = v;
    if (acc.prog_bar) progress_bar_metrics_[name] = v;
    if (acc.logger) logged[name] = v;
  }
  epoch_accumulators_.clear();
  return logged;
}

void Trainer::send_to_loggers(const std::map<std::string, double>& metrics) {
  if (metrics.empty() || options_.fast_dev_run()) return;
  auto timer = profiler_->scope("log_metrics");
  auto with_epoch = metrics;
  with_epoch["epoch"] = static_cast<double>(current_epoch_);
  for (auto& logger : loggers_) logger->log_metrics(with_epoch, global_step_);
}

}  // namespace j2v::engine
