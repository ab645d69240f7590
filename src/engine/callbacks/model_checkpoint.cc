#include "engine/callbacks/model_checkpoint.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "base/atomic_file.h"
#include "engine/trainer.h"

namespace j2v::engine {

namespace fs = std::filesystem;

const Parameters<ModelCheckpointOptions>& ModelCheckpointOptions::parameters() {
  static const auto declared =
      Parameters<ModelCheckpointOptions>()
          .add("dirpath", &ModelCheckpointOptions::dirpath_, "directory of the checkpoints; empty: <run dir>/checkpoints")
          .add("monitor", &ModelCheckpointOptions::monitor_, "metric that ranks checkpoints")
          .add("mode", &ModelCheckpointOptions::mode_, "whether a lower or a higher monitored value is better")
          .one_of({"min", "max"})
          .add("save_top_k", &ModelCheckpointOptions::save_top_k_, "keep this many best checkpoints; 0 = none, -1 = all")
          .at_least(-1)
          .add("save_last", &ModelCheckpointOptions::save_last_, "also keep the most recent checkpoint");
  return declared;
}

ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options) : options_(std::move(options)) {
  ModelCheckpointOptions::parameters().check(options_, "checkpoint");
}

void ModelCheckpoint::on_fit_start(Trainer& trainer, Module&) {
  dirpath_ = options_.dirpath().empty() ? (fs::path(trainer.run_dir()) / "checkpoints").string() : options_.dirpath();
}

bool ModelCheckpoint::better(double candidate, double reference) const {
  return options_.mode() == "min" ? candidate < reference : candidate > reference;
}

void ModelCheckpoint::on_train_epoch_end(Trainer& trainer, Module& module) {
  if (trainer.options().fast_dev_run() || dirpath_.empty()) return;
  const auto& metrics = trainer.callback_metrics();
  bool stale = trainer.metric_is_stale(options_.monitor());  // an epoch without validation: not ranked
  auto it = metrics.find(options_.monitor());
  std::string name = fmt::format("epoch={}-step={}.ckpt", trainer.current_epoch() - 1, trainer.global_step());
  std::string saved_this_epoch;
  if (options_.save_top_k() != 0 && !stale && it != metrics.end() && std::isfinite(it->second)) {
    double score = it->second;
    bool keep = options_.save_top_k() < 0 || static_cast<int64_t>(kept_.size()) < options_.save_top_k() ||
                better(score, kept_.back().first);
    if (keep) {
      // The ranking is updated before the file is written, so the checkpoint (and last.ckpt,
      // linked to it) holds this callback's state as of this epoch.
      std::string path = (fs::path(dirpath_) / name).string();
      kept_.emplace_back(score, path);
      std::stable_sort(kept_.begin(), kept_.end(), [&](auto& a, auto& b) { return better(a.first, b.first); });
      std::vector<std::string> evicted;
      while (options_.save_top_k() > 0 && static_cast<int64_t>(kept_.size()) > options_.save_top_k()) {
        evicted.push_back(kept_.back().second);
        kept_.pop_back();
      }
      best_model_path_ = kept_.front().second;
      best_model_score_ = kept_.front().first;
      trainer.save_checkpoint(path, module);
      saved_this_epoch = path;
      for (const auto& old : evicted) {
        std::error_code ignored;
        if (trainer.is_global_zero()) fs::remove(old, ignored);
      }
    }
  } else if (options_.save_top_k() != 0 && !stale && it == metrics.end() && !warned_missing_) {
    warned_missing_ = true;
    std::cerr << "warning: checkpoint.monitor '" << options_.monitor()
              << "' was not logged (no validation data?); only last.ckpt is kept\n";
  }
  if (options_.save_last()) {
    last_model_path_ = (fs::path(dirpath_) / "last.ckpt").string();
    // The epoch's ranked checkpoint is the same state: link it instead of writing it twice
    // (checkpoint files are only ever replaced by rename, never changed in place).
    // Rank 0 writes the files; every rank keeps the same ranking.
    if (trainer.is_global_zero() && (saved_this_epoch.empty() || !link_as(saved_this_epoch, last_model_path_)))
      trainer.save_checkpoint(last_model_path_, module);
  }
  if (best_model_path_.empty()) best_model_path_ = last_model_path_;
  if (trainer.is_global_zero()) write_index();
}

bool ModelCheckpoint::link_as(const std::string& existing, const std::string& target) {
  return link_file_atomically(existing, target);
}

std::string ModelCheckpoint::save_last(Trainer& trainer, Module& module) {
  if (dirpath_.empty()) dirpath_ = (fs::path(trainer.run_dir()) / "checkpoints").string();
  last_model_path_ = (fs::path(dirpath_) / "last.ckpt").string();
  trainer.save_checkpoint(last_model_path_, module);
  if (best_model_path_.empty()) best_model_path_ = last_model_path_;
  if (trainer.is_global_zero()) write_index();
  return last_model_path_;
}

void ModelCheckpoint::write_index() const {
  fs::create_directories(dirpath_);
  nlohmann::json index = {{"best_model_path", fs::absolute(best_model_path_).string()},
                          {"best_model_score", best_model_score_},
                          {"last_model_path", last_model_path_.empty() ? "" : fs::absolute(last_model_path_).string()},
                          {"monitor", options_.monitor()},
                          {"mode", options_.mode()}};
  write_file_atomically((fs::path(dirpath_) / "index.json").string(), index.dump(2) + "\n");
}

nlohmann::json ModelCheckpoint::read_index(const fs::path& dir) {
  std::ifstream in(dir / "index.json");
  if (!in) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(in);
  } catch (...) {
    return nlohmann::json::object();
  }
}

nlohmann::json ModelCheckpoint::state_dict() const {
  nlohmann::json kept = nlohmann::json::array();
  for (auto& [score, path] : kept_) kept.push_back({score, path});
  return {{"best_model_path", best_model_path_}, {"best_model_score", best_model_score_}, {"kept", kept}};
}

void ModelCheckpoint::load_state_dict(const nlohmann::json& s) {
  best_model_path_ = s.value("best_model_path", "");
  best_model_score_ = s.value("best_model_score", 0.0);
  kept_.clear();
  if (s.contains("kept"))
    for (auto& k : s["kept"]) kept_.emplace_back(k[0].get<double>(), k[1].get<std::string>());
}

}  // namespace j2v::engine
