// The config file's schema: every key with its type, default, bounds and help. Sections whose
// options structs declare their parameters (model, optimizer, scheduler, checkpoint,
// early_stopping, writer) take their keys from those declarations.
#include <algorithm>

#include "cli/config.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/callbacks/weight_averaging.h"
#include "engine/trainer.h"

namespace j2v::cli {

using json = nlohmann::json;

const std::vector<KeySpec>& config_keys() {
  using Bound = std::optional<double>;
  const Bound none;
  // One place for the whole schema: help, defaults, validation and
  // print-config all derive from it.
  // Sections whose options structs declare their parameters take their keys from there.
  auto declared = [](const std::string& section, const std::vector<ParameterInfo>& parameters,
                     std::vector<std::string> except = {}) {
    std::vector<KeySpec> keys;
    for (const auto& p : parameters) {
      if (std::find(except.begin(), except.end(), p.name) != except.end()) continue;
      keys.push_back({section + "." + p.name, p.type == "string?" ? "path?" : p.type, p.default_value, p.allowed, p.help,
                      p.minimum, p.maximum});
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
       "REQUIRED, non-empty: field name -> type (e.g. 'price: number') or options mapping "
       "(e.g. 'price: {type: number, target: true}')"},

      {"data.train", "path?", nullptr, {},
       "training records: a .jsonl/.ndjson file (plain, .gz or .zst), .parquet, .csv/.tsv or .json"},
      {"data.validate", "path?", nullptr, {},
       "validation records (any format of data.train); when null, data.validate_fraction of train is held out"},
      {"data.test", "path?", nullptr, {}, "test records (any format of data.train)"},
      {"data.predict", "path?", nullptr, {}, "records to predict (any format of data.train)"},
      {"data.sql", "path?", nullptr, {},
       "instead of data.train: a DuckDB query whose rows are the training records, "
       "e.g. SELECT * FROM read_parquet('events/*.parquet') WHERE day > '2024-01-01'"},
      {"data.streaming", "map", json::object(), {},
       "read files as needed instead of loading them: root (directory), suffix (jsonl|ndjson|parquet|csv|json), "
       "train/validate/test/predict (regexes searched in each path under root), sharding (file|chunk|record), "
       "chunk_size, shuffle_buffer, sample_rate, replacement, stats_records, queue_batches, world_size, rank"},
      {"data.validate_fraction", "float", 0.1, {},
       "share of train held out for validation when data.validate is null; 0 disables", 0, 1},
      {"data.batch_size", "int", 256, {}, "records per batch", 1, none},
      {"data.num_workers", "int", 0, {}, "threads encoding records into tensors; 0 = all cores", 0, none},
      {"data.shuffle", "bool", true, {}, "shuffle the training records every epoch"},
      {"data.seed", "int", 0, {}, "seed of the shuffling and of the train/validate split"},

    },
    declared("optimizer", OptimizerOptions::parameters().info()),
    declared("scheduler", SchedulerOptions::parameters().info()),
    {
      {"trainer.max_epochs", "int", 100, {}, "stop after this many epochs; -1 = no limit", -1, none},
      {"trainer.max_steps", "int", -1, {}, "stop after this many optimizer steps; -1 = no limit", -1, none},
      {"trainer.limit_train_batches", "int_or_float", 1.0, {},
       "training batches per epoch: a float is a fraction of them, an int a count", 0, none},
      {"trainer.limit_val_batches", "int_or_float", 1.0, {},
       "validation batches per check: a float is a fraction of them, an int a count", 0, none},
      {"trainer.limit_test_batches", "int_or_float", 1.0, {},
       "test batches: a float is a fraction of them, an int a count", 0, none},
      {"trainer.limit_predict_batches", "int_or_float", 1.0, {},
       "predict batches: a float is a fraction of them, an int a count", 0, none},
      {"trainer.fast_dev_run", "bool", false, {},
       "smoke test: run a single batch of each stage, without checkpoints or logs"},
      {"trainer.accumulate_grad_batches", "int", 1, {},
       "batches whose gradients are summed per optimizer step", 1, none},
      {"trainer.gradient_clip_val", "float", 1.0, {}, "clip the gradient norm to this value; 0 disables", 0, none},
      {"trainer.seed", "int", 0, {}, "seed of weight initialization and dropout"},
      {"trainer.num_threads", "int", 0, {}, "threads for tensor operations; 0 = all cores", 0, none},
      // WeightAveraging's declaration gives the default and the bounds; 0 (off) is the CLI's.
      {"trainer.weight_averaging", "float", kDecay.default_value, {}, "decay per step of an exponential moving average of the weights, used for validation, checkpoints and the final model; 0 = off",
       kDecay.minimum, kDecay.maximum},
      {"trainer.devices", "int", 1, {}, "data-parallel devices, each taking its own batch (DDP semantics: the effective batch is data.batch_size x devices); on CPU, model replicas on threads", 1, 64},
      {"trainer.strategy", "enum", engine::TrainerOptions().strategy(), engine::strategy_names(),
       "where training steps run: auto (single_device for one device, thread_replicas for more), single_device, or thread_replicas (a model replica per CPU thread)"},
      {"trainer.default_root_dir", "string", "runs", {}, "directory for logs and checkpoints"},
      {"trainer.enable_progress_bar", "bool", true, {}, "show a progress bar"},
      {"trainer.enable_checkpointing", "bool", true, {}, "save checkpoints (see the checkpoint section)"},
      {"trainer.logger", "bool_or_components", true, {},
       "true: a CSV log in the run directory; or a list of loggers, e.g. [CSVLogger, TensorBoardLogger]"},
      {"trainer.callbacks", "components", json::array(), {},
       "further callbacks by class_path and init_args, e.g. [{class_path: LearningRateMonitor}, "
       "{class_path: Timer, init_args: {duration: '00:01:00:00'}}, RollbackToBest]"},
      {"trainer.precision", "enum", "32-true", {"32-true", "bf16-mixed"},
       "32-true, or bf16-mixed: steps run under CPU autocast to bfloat16, weights stay float32"},
      {"trainer.gradient_clip_algorithm", "enum", "norm", {"norm", "value"},
       "clip the gradients' global norm, or each gradient value, to trainer.gradient_clip_val"},
      {"trainer.overfit_batches", "int_or_float", 0, {},
       "train and validate on the same first batches (an int count or a float fraction); 0 = off", 0, none},
      {"trainer.val_check_interval", "int_or_float", 1.0, {},
       "validate within each epoch: a float is a fraction of the epoch, an int a number of batches", 0, none},
      {"trainer.check_val_every_n_epoch", "int", 1, {}, "validate after every this many epochs", 1, none},
      {"trainer.deterministic", "bool", false, {}, "use deterministic algorithms only (an error where none exists)"},
      {"trainer.profiler", "enum", "none", {"none", "simple"},
       "simple: time each hook and step, printed and written to <run dir>/fit-profiler.txt"},
      {"trainer.log_every_n_steps", "int", 50, {}, "log training metrics every this many optimizer steps", 1, none},

    },
    declared("checkpoint", engine::ModelCheckpointOptions::parameters().info(), {"dirpath"}),
    {
      {"early_stopping.enabled", "bool", true, {}, "stop when early_stopping.monitor stops improving"},
    },
    declared("early_stopping", engine::EarlyStoppingOptions::parameters().info()),
    declared("writer", engine::PredictionWriterOptions::parameters().info()),
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
