// The config file's schema: every key with its type, default, bounds and help. Sections whose
// options structs declare their parameters (model, data, data.streaming, optimizer,
// scheduler, trainer, checkpoint, early_stopping, prediction_writer) take their keys from
// those declarations.
#include <algorithm>

#include "cli/config.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/callbacks/weight_averaging.h"
#include "data/streaming_data_module.h"
#include "data/table_data_module.h"
#include "engine/trainer_options.h"

namespace j2v::cli {

using json = nlohmann::json;

namespace {

// The CLI's trainer differs from the library's Trainer in these keys, on purpose; every other
// trainer key is TrainerOptions' declaration as it stands.
void cli_trainer_defaults(KeySpec& key) {
  // A run from a config file repeats itself unless told otherwise (the library leaves the
  // generator alone unless given a seed).
  if (key.key == "trainer.seed") {
    key.type = "int", key.default_value = 0;
    key.help = "seed of weight initialization and dropout";
  }
  // json2vec's transformers train steadier with the gradient norm clipped (the library, as
  // Lightning, does not clip unless asked).
  if (key.key == "trainer.gradient_clip_val") key.default_value = 1.0;
  // Early stopping on a small held-out split is noisy: on a 643-row table it stopped one run
  // 10 epochs after a lucky epoch 6, at 1.8x the test error of runs that went on (bench/accuracy).
  if (key.key == "trainer.min_epochs") key.default_value = 25;
  // Also a list of logger components, which the CLI builds.
  if (key.key == "trainer.logger") {
    key.type = "bool_or_components";
    key.help = "true: a CSV log in the run directory; or a list of loggers, e.g. [CSVLogger, TensorBoardLogger]";
  }
}

// data.streaming's own keys, each with its help.
std::string streaming_help() {
  std::string help = "read files as needed instead of loading them. Keys:";
  for (const auto& p : StreamingDataOptions::own_parameters()) help += " " + p.name + ": " + p.help + ";";
  help.back() = '.';
  return help;
}

}  // namespace

const std::vector<KeySpec>& config_keys() {
  // One place for the whole schema: help, defaults, validation and
  // print-config all derive from it.
  // Sections whose options structs declare their parameters take their keys from there.
  auto declared = [](const std::string& section, const std::vector<ParameterInfo>& parameters,
                     std::vector<std::string> except = {}, void (*cli_differs)(KeySpec&) = nullptr) {
    std::vector<KeySpec> keys;
    for (const auto& p : parameters) {
      if (std::find(except.begin(), except.end(), p.name) != except.end()) continue;
      keys.push_back({section + "." + p.name, p.type == "string?" ? "path?" : p.type, p.default_value, p.allowed, p.help,
                      p.minimum, p.maximum});
      if (cli_differs) cli_differs(keys.back());
    }
    return keys;
  };
  static const ParameterInfo kDecay = engine::WeightAveragingOptions::parameters().info().at(0);
  auto join = [](std::vector<std::vector<KeySpec>> parts) {
    std::vector<KeySpec> all;
    for (auto& part : parts) all.insert(all.end(), part.begin(), part.end());
    return all;
  };
  // clang-format off
  static const std::vector<KeySpec> kKeys = join({
    declared("model", ModelOptions::parameters().info()),
    {
      {"model.fields", "map", json::object(), {},
       "field name -> type (e.g. 'price: number') or options mapping (e.g. 'price: {type: number, target: true}'); "
       "fit without fields infers them from data.train (`json2vec infer-schema FILE` shows how)"},
      {"model.target", "path?", nullptr, {},
       "the field to predict: marks it `target: true` in model.fields, or names the target of inferred fields"},
      {"model.init_from", "path?", nullptr, {},
       "fine-tuning: a checkpoint whose fields with the same address, type and options give this model their state "
       "and weights (the schemas may differ); unlike --ckpt_path, which resumes one run exactly"},

      {"data.train", "path?", nullptr, {},
       "training records: a .jsonl/.ndjson file (plain, .gz or .zst), .parquet, .csv/.tsv or .json"},
      {"data.validate", "path?", nullptr, {},
       "validation records (any format of data.train); when null, data.validate_fraction of train is held out"},
      {"data.test", "path?", nullptr, {}, "test records (any format of data.train)"},
      {"data.predict", "path?", nullptr, {}, "records to predict (any format of data.train)"},
      {"data.sql", "path?", nullptr, {},
       "instead of data.train: a DuckDB query whose rows are the training records, "
       "e.g. SELECT * FROM read_parquet('events/*.parquet') WHERE day > '2024-01-01'"},
      {"data.streaming", "map", json::object(), {}, streaming_help()},
    },
    declared("data", TableDataOptions::parameters().info()),
    declared("optimizer", OptimizerOptions::parameters().info()),
    declared("scheduler", SchedulerOptions::parameters().info()),
    declared("trainer", engine::TrainerOptions::parameters().info(), {"handle_signals"}, cli_trainer_defaults),
    {
      // trainer.logger and trainer.callbacks also take components, which the CLI builds.
      {"trainer.callbacks", "components", json::array(), {},
       "further callbacks by class_path and init_args, e.g. [{class_path: LearningRateMonitor}, "
       "{class_path: Timer, init_args: {duration: '00:01:00:00'}}, RollbackToBest]"},
      // WeightAveraging's declaration gives the default and the bounds; 0 (off) is the CLI's.
      {"trainer.weight_averaging", "float", kDecay.default_value, {}, "decay per step of an exponential moving average of the weights, used for validation, checkpoints and the final model; 0 = off",
       kDecay.minimum, kDecay.maximum},
    },
    declared("checkpoint", engine::ModelCheckpointOptions::parameters().info(), {"dirpath"}),
    {
      {"early_stopping.enabled", "bool", true, {}, "stop when early_stopping.monitor stops improving"},
      {"early_stopping.refit", "enum", "never", {"never", "always", "auto"},
       "after the fit, train a new model on every training row (the validation share included) for the epochs of the "
       "best checkpoint, with the same batch size and schedule; its checkpoint becomes the run's best. Only where "
       "validation is data.validate_fraction of data.train (not data.validate, not streaming), in one process; "
       "auto: when data.train has fewer than 1,000 rows"},
    },
    declared("early_stopping", engine::EarlyStoppingOptions::parameters().info()),
    declared("prediction_writer", engine::PredictionWriterOptions::parameters().info()),
  });
  // clang-format on
  return kKeys;
}

ModelOptions model_options(const nlohmann::json& config) {
  const json& m = config["model"];
  json own = json::object();
  for (const auto& p : ModelOptions::parameters().info())
    if (m.contains(p.name)) own[p.name] = m[p.name];
  auto shorthand = [&](const char* section) -> json {
    if (!config.contains(section) || !config[section].is_object() || config[section].contains("class_path"))
      return json::object();
    return config[section];
  };
  own["optimizer"] = shorthand("optimizer");
  own["scheduler"] = shorthand("scheduler");
  return ModelOptions::from_json(own);
}

}  // namespace j2v::cli
