#pragma once
// What the CLI's commands share: the model, data module and Trainer options a resolved
// config describes (commands.cc), used by the lifecycle commands (commands_lifecycle.cc).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"
#include "engine/trainer_options.h"
#include "model/model.h"

namespace j2v::cli {

Model build_model(const nlohmann::json& cfg);
std::unique_ptr<engine::DataModule> build_data(const Model& model, const nlohmann::json& cfg);
engine::TrainerOptions build_trainer_options(const nlohmann::json& cfg, const std::string& command);

// `json2vec infer-schema FILE [--target NAME] [--sample N] [--name ROOT]`: prints the config.
int run_infer_schema(const std::string& input, const std::vector<std::string>& options);
// fit without model.fields: infers them from data.train (model.target names the target) and
// writes them into cfg, so the run's config.yaml holds the schema it trained.
void infer_missing_fields(nlohmann::json& cfg);
// `json2vec importance --config run.yaml --ckpt_path best [--output DIR]`.
int run_importance(const nlohmann::json& cfg, const std::string& ckpt_path, const std::string& output_dir);
// --override ADDRESS.OPTION=VALUE (e.g. record.amount.active=false), applied in order; each
// change is said on stderr. Throws ConfigError naming the override.
void apply_schema_overrides(Model& model, const std::vector<std::string>& overrides);

}  // namespace j2v::cli
