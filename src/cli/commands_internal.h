#pragma once
// What the CLI's commands share: the model, data module and Trainer options a resolved
// config describes (commands.cc), used by the lifecycle commands (commands_lifecycle.cc).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"
#include "engine/trainer_options.h"
#include "model/model.h"

namespace j2v::engine {
class Trainer;
}

namespace j2v::cli {

Model build_model(const nlohmann::json& cfg);
std::unique_ptr<engine::DataModule> build_data(const Model& model, const nlohmann::json& cfg);
engine::TrainerOptions build_trainer_options(const nlohmann::json& cfg, const std::string& command);
// An optimizer (and lr_scheduler) given in the config replaces the module's own, as in LightningCLI.
void use_configured_optimizer(const nlohmann::json& cfg, engine::Trainer& trainer);

// early_stopping.refit (commands_refit.cc): after a fit that held a share of data.train out
// for validation (auto: of fewer than 1,000 rows), a new model from make_model trains on
// every training row for the epochs of the best checkpoint. Returns what the refit did (epochs, steps, run_dir, train
// metrics; "interrupted" and "checkpoint" after a signal), or nothing when the fit is not
// refitted (said on stderr when refit: always does not apply).
std::optional<nlohmann::json> refit_on_all_rows(const nlohmann::json& cfg, engine::Trainer& fitted,
                                                engine::DataModule& fitted_data,
                                                const std::function<Model(const nlohmann::json&)>& make_model);

// `json2vec infer-schema FILE [--target NAME] [--sample N] [--name ROOT]`: prints the config.
int run_infer_schema(const std::string& input, const std::vector<std::string>& options);
// fit without model.fields: infers them from data.train (model.target names the target) and
// writes them into cfg, so the run's config.yaml holds the schema it trained.
void infer_missing_fields(nlohmann::json& cfg);
// A benchmark's numeric option: the whole value must be a number ("2x" is refused), and a
// whole one where `whole`, else a ConfigError naming the benchmark, the option and the value.
double bench_number_option(const std::string& bench, const std::string& key, const std::string& value, bool whole);
// `json2vec bench gemm [--threads N] [--seconds S]`: prints the float GEMM rate json2vec's own
// matrix products reach on this machine (square and thin shapes), as JSON.
int run_bench_gemm(const std::vector<std::string>& options);
// `json2vec bench attention [--items N] [--keys T] [--dropout P] [--absent F] [--rounds R]`:
// forward and backward milliseconds of the short-attention kernel on one thread, as JSON.
int run_bench_attention(const std::vector<std::string>& options);
// `json2vec importance --config run.yaml --ckpt_path best [--output DIR]`.
int run_importance(const nlohmann::json& cfg, const std::string& ckpt_path, const std::string& output_dir);
// --override ADDRESS.OPTION=VALUE (e.g. record.amount.active=false), applied in order; each
// change is said on stderr. Throws ConfigError naming the override.
void apply_schema_overrides(Model& model, const std::vector<std::string>& overrides);

}  // namespace j2v::cli
