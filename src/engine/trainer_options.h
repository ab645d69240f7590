#pragma once
// What a Trainer is told: durations, batch limits, devices, precision, logging. Every setting
// a config file can hold is declared once in TrainerOptions::parameters() (its default, bounds
// and help), which the CLI's config schema, --help and --print_config read.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/parameters.h"

namespace j2v::engine {

class Callback;
class Logger;

// limit_*_batches: a fraction of the loader (1.0 = all) or a count of batches.
struct BatchLimit {
  double value = 1.0;
  bool is_fraction = true;
  static BatchLimit fraction(double f) { return {f, true}; }
  static BatchLimit count(int64_t n) { return {static_cast<double>(n), false}; }
  int64_t apply(int64_t available) const;  // available may be -1 (unknown)
};

struct TrainerOptions {
  static const Parameters<TrainerOptions>& parameters();

  J2V_ARG(int64_t, max_epochs) = 100;
  J2V_ARG(int64_t, max_steps) = -1;
  // Lightning's: a stop asked for earlier (by early stopping) waits until both are reached.
  J2V_ARG(int64_t, min_epochs) = 0;
  J2V_ARG(int64_t, min_steps) = 0;
  J2V_ARG(BatchLimit, limit_train_batches) = {};
  J2V_ARG(BatchLimit, limit_val_batches) = {};
  J2V_ARG(BatchLimit, limit_test_batches) = {};
  J2V_ARG(BatchLimit, limit_predict_batches) = {};
  J2V_ARG(bool, fast_dev_run) = false;
  J2V_ARG(int64_t, accumulate_grad_batches) = 1;
  J2V_ARG(double, gradient_clip_val) = 0.0;
  J2V_ARG(std::optional<int64_t>, seed) = std::nullopt;
  J2V_ARG(int64_t, num_threads) = 0;
  J2V_ARG(int64_t, devices) = 1;
  J2V_ARG(std::string, strategy) = "auto";
  J2V_ARG(int64_t, num_nodes) = 1;
  J2V_ARG(int64_t, ddp_timeout_s) = 1800;
  J2V_ARG(std::string, accelerator) = "auto";
  J2V_ARG(std::string, default_root_dir) = "runs";
  J2V_ARG(bool, enable_progress_bar) = true;
  J2V_ARG(bool, enable_checkpointing) = true;
  J2V_ARG(bool, logger) = true;
  J2V_ARG(int64_t, log_every_n_steps) = 50;
  J2V_ARG(std::string, precision) = "32-true";
  J2V_ARG(std::string, float32_matmul_precision) = "highest";
  J2V_ARG(std::string, gradient_clip_algorithm) = "norm";
  J2V_ARG(BatchLimit, overfit_batches) = BatchLimit::count(0);
  J2V_ARG(BatchLimit, val_check_interval) = {};
  J2V_ARG(int64_t, check_val_every_n_epoch) = 1;
  J2V_ARG(bool, deterministic) = false;
  J2V_ARG(std::string, profiler) = "none";
  J2V_ARG(bool, handle_signals) = true;
  // Not settings but parts, given by code (the CLI builds them from trainer.callbacks and
  // trainer.logger): not declared.
  J2V_ARG(std::vector<std::shared_ptr<Callback>>, callbacks) = {};
  J2V_ARG(std::vector<std::shared_ptr<Logger>>, loggers) = {};
  // The resolved run configuration, kept in every checkpoint (meta "config").
  J2V_ARG(nlohmann::json, config) = nullptr;
};

}  // namespace j2v::engine

namespace j2v::detail {
// A batch limit is written as Lightning writes it: an int counts batches, a float is a share.
template <>
struct ParameterTraits<engine::BatchLimit> : ValueTraits<engine::BatchLimit> {
  static constexpr const char* type = "int_or_float";
  static bool accepts(const nlohmann::json& v) { return v.is_number(); }
  static nlohmann::json to_json(const engine::BatchLimit& v) {
    if (v.is_fraction) return v.value;
    return static_cast<int64_t>(v.value);
  }
  static engine::BatchLimit from_json(const nlohmann::json& v) {
    if (v.is_number_integer()) return engine::BatchLimit::count(v.get<int64_t>());
    return engine::BatchLimit::fraction(v.get<double>());
  }
  static std::optional<double> number(const engine::BatchLimit& v) { return v.value; }
};
}  // namespace j2v::detail
