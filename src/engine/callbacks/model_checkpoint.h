#pragma once
// Saves checkpoints at the end of each training epoch: the best save_top_k by a monitored
// metric, and last.ckpt. An index.json beside them names the best and last files, so a
// later process can resolve --ckpt_path best|last.
#include <filesystem>

#include "base/options.h"
#include "base/parameters.h"
#include "engine/callback.h"

namespace j2v::engine {

struct ModelCheckpointOptions {
  static const Parameters<ModelCheckpointOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(std::string, dirpath) = "";  // default: <run dir>/checkpoints
  J2V_ARG(std::string, monitor) = "loss/validate";
  J2V_ARG(std::string, mode) = "min";  // min | max
  J2V_ARG(int64_t, save_top_k) = 1;    // 0: keep none by metric; -1: keep all
  J2V_ARG(bool, save_last) = true;
};

class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(ModelCheckpointOptions options = {});
  std::string state_key() const override { return "ModelCheckpoint{" + options_.monitor() + "}"; }
  void on_fit_start(Trainer&, Module&) override;
  void on_train_epoch_end(Trainer&, Module&) override;
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json&) override;

  // Writes last.ckpt now (an interrupted fit) and returns its path.
  std::string save_last(Trainer&, Module&);
  const std::string& best_model_path() const { return best_model_path_; }
  double best_model_score() const { return best_model_score_; }
  const std::string& last_model_path() const { return last_model_path_; }
  const ModelCheckpointOptions& options() const { return options_; }
  static nlohmann::json read_index(const std::filesystem::path& dir);

 private:
  bool better(double candidate, double reference) const;
  void write_index() const;
  static bool link_as(const std::string& existing, const std::string& target);
  ModelCheckpointOptions options_;
  std::string dirpath_;
  std::vector<std::pair<double, std::string>> kept_;  // (score, path), best first
  std::string best_model_path_, last_model_path_;
  double best_model_score_ = 0;
  bool warned_missing_ = false;
};

}  // namespace j2v::engine
