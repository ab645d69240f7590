// fit's refit on every training row (early_stopping.refit: auto | always | never). Early
// stopping chooses its epoch on a share held out of data.train, and that share is then lost
// to the model: on a table of a few hundred rows it is a tenth of what there is to learn
// from. The refit trains a new model on all the training rows, validation share included,
// for as many epochs as gave the best validation loss, with the fit's batch size and
// learning-rate schedule, so it walks the same path with more data; its last checkpoint
// becomes the run's best.
#include <fmt/format.h>

#include <iostream>

#include "cli/commands_internal.h"
#include "data/table_data_module.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/checkpoint_io.h"
#include "engine/components.h"
#include "engine/stop_signal.h"
#include "engine/trainer.h"

namespace j2v::cli {

using nlohmann::json;

namespace {

// Ends a fit after a number of epochs without shortening its schedule, which max_epochs
// would (the schedule spans max_epochs).
class StopAfterEpochs : public engine::Callback {
 public:
  explicit StopAfterEpochs(int64_t epochs) : epochs_(epochs) {}
  std::string state_key() const override { return "StopAfterEpochs"; }
  void on_train_epoch_end(engine::Trainer& trainer, engine::Module&) override {
    if (trainer.current_epoch() >= epochs_) trainer.should_stop = true;
  }

 private:
  int64_t epochs_;
};

// early_stopping.refit: auto refits tables under this many rows of data.train, where the
// held-out tenth is a share worth a second fit (bench/accuracy, 3 splits: sonar, 208 rows,
// AUC 0.907 -> 0.925; boston_housing, 506, RMSE 3.43 -> 3.15; but sacramento, 932, 71,610 ->
// 74,741, where one split's best epoch came early). On tables of 2,000 to 7,000 rows
// (cells, satellite, wa_churn) a refit changed nothing and doubled the fit time.
constexpr int64_t kAutoRefitBelowRows = 1000;

// Why this fit is not refitted, or "" when it is; "quiet:" reasons are not worth a word.
std::string reason_not_to_refit(const json& cfg, engine::Trainer& fitted, engine::DataModule& fitted_data) {
  const json& d = cfg["data"];
  std::string mode = cfg["early_stopping"]["refit"].get<std::string>();
  if (mode == "never" || !cfg["early_stopping"]["enabled"].get<bool>()) return "quiet:";
  if (!d["streaming"].is_null() && !d["streaming"].empty()) return "data.streaming reads its files as it goes";
  if (!d["validate"].is_null()) return "data.validate is a separate file, not a share of data.train";
  if (d["validate_fraction"].get<double>() <= 0) return "no validation share is held out (data.validate_fraction 0)";
  if (fitted.world_size() > 1) return "a run over several processes";
  auto* table = dynamic_cast<TableDataModule*>(&fitted_data);
  if (!table) return "the data module is not json2vec's table";
  int64_t rows = table->rows(engine::Stage::kFit) + table->rows(engine::Stage::kValidate);
  if (mode == "auto" && rows >= kAutoRefitBelowRows)
    return fmt::format("quiet:{} rows (auto refits under {})", rows, kAutoRefitBelowRows);
  return "";
}

std::string best_checkpoint(engine::Trainer& fitted) {
  for (const auto& callback : fitted.callbacks())
    if (auto* checkpoint = dynamic_cast<engine::ModelCheckpoint*>(callback.get()))
      if (checkpoint->best_model_path() != checkpoint->last_model_path()) return checkpoint->best_model_path();
  return "";
}

}  // namespace

std::optional<json> refit_on_all_rows(const json& cfg, engine::Trainer& fitted, engine::DataModule& fitted_data,
                                      const std::function<Model(const json&)>& make_model) {
  std::string reason = reason_not_to_refit(cfg, fitted, fitted_data);
  std::string best = reason.empty() ? best_checkpoint(fitted) : "";
  if (reason.empty() && best.empty()) reason = "no checkpoint was ranked by early_stopping's metric";
  if (!reason.empty()) {
    // Said where it was asked for; auto passes over what does not suit it in silence.
    bool asked = cfg["early_stopping"]["refit"].get<std::string>() == "always";
    if (asked && reason.rfind("quiet:", 0) != 0 && fitted.is_global_zero())
      std::cerr << "fit: early_stopping.refit skipped: " << reason << "\n";
    return std::nullopt;
  }
  int64_t epochs = engine::CheckpointReader(best).meta().at("epoch").get<int64_t>();

  json refit = cfg;
  refit["data"]["validate_fraction"] = 0.0;
  // The fit's batch size, not one derived again from more rows: the same steps per record.
  if (auto* table = dynamic_cast<TableDataModule*>(&fitted_data)) refit["data"]["batch_size"] = table->batch_size();
  refit["early_stopping"]["enabled"] = false;
  refit["trainer"]["min_epochs"] = 0;
  refit["trainer"]["min_steps"] = 0;
  // Nothing to rank without validation: last.ckpt is the refit's checkpoint and its best.
  refit["checkpoint"]["save_top_k"] = 0;
  refit["checkpoint"]["save_last"] = true;
  // An EarlyStopping or ModelCheckpoint listed in trainer.callbacks replaces its section's
  // callback, and would watch a validation loss the refit never logs: the sections set above
  // stand in for them.
  if (refit["trainer"]["callbacks"].is_array()) {
    json kept = json::array();
    for (const auto& callback : refit["trainer"]["callbacks"]) {
      std::string name = engine::callbacks().find(callback["class_path"].get<std::string>()).name;
      if (name != "EarlyStopping" && name != "ModelCheckpoint") kept.push_back(callback);
    }
    refit["trainer"]["callbacks"] = kept;
  }

  Model model = make_model(refit);
  std::unique_ptr<engine::DataModule> data = build_data(model, refit);
  engine::TrainerOptions options = build_trainer_options(refit, "fit");
  auto callbacks = options.callbacks();
  callbacks.push_back(std::make_shared<StopAfterEpochs>(epochs));
  options.callbacks(callbacks);
  engine::Trainer trainer(options);
  use_configured_optimizer(refit, trainer);  // the fit's optimizer, not the module's own
  std::cerr << fmt::format("fit: refitting on every training row for {} epochs (the best validation loss, {})\n", epochs,
                           best);
  trainer.fit(model, *data, std::nullopt);
  json out = {{"epoch", trainer.current_epoch()}, {"global_step", trainer.global_step()},
              {"run_dir", trainer.run_dir()}, {"best_of_fit", best}};
  for (const auto& [k, v] : trainer.callback_metrics())
    if (k.find("/train") != std::string::npos) out[k] = v;
  if (trainer.interrupted_by()) {
    out["interrupted"] = engine::signal_name(trainer.interrupted_by());
    out["signal"] = trainer.interrupted_by();
    out["checkpoint"] = trainer.interrupt_checkpoint();
  }
  return out;
}

}  // namespace j2v::cli
