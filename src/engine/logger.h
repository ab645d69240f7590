#pragma once
// Metric loggers (after Lightning's Logger): the Trainer sends them every logged value.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace j2v::engine {

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log_metrics(const std::map<std::string, double>& metrics, int64_t step) = 0;
  virtual void log_hyperparams(const nlohmann::json& params) {}
  // The run's directory, once the Trainer has made it; loggers without a directory of their own use it.
  virtual void set_run_dir(const std::string& run_dir) {}
  virtual void save() {}
  virtual void finalize() { save(); }
};

// metrics.csv (one row per log call; columns grow as new metrics appear) and hparams.yaml
// in the run directory.
class CSVLogger : public Logger {
 public:
  explicit CSVLogger(std::string directory = "") : directory_(std::move(directory)) {}
  void set_run_dir(const std::string& run_dir) override {
    if (directory_.empty()) directory_ = run_dir;
  }
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override;
  void log_hyperparams(const nlohmann::json& params) override;
  void save() override;
  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  std::vector<std::string> columns_;
  std::vector<std::map<std::string, double>> rows_;
  bool dirty_ = false;
};

}  // namespace j2v::engine
