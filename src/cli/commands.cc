#include "cli/commands.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <unistd.h>

#include "cli/commands_internal.h"
#include "cli/commands_serve.h"
#include "cli/config.h"
#include "base/atomic_file.h"
#include "base/errors.h"
#include "data/record_buffer.h"
#include "data/synthetic_orders.h"
#include "data/streaming_data_module.h"
#include "data/table_data_module.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "base/available_cores.h"
#include "engine/callbacks/weight_averaging.h"
#include "engine/components.h"
#include "engine/profiler.h"
#include "engine/stop_signal.h"
#include "engine/trainer.h"
#include "fields/registry.h"
#include "io/convert_file.h"
#include "io/row_writer.h"
#include "model/model.h"

namespace j2v::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kUsage = R"(usage: json2vec COMMAND [--config FILE] [--section.key=value ...] [--ckpt_path PATH|last|best]

commands:
  fit           train a model (resume with --ckpt_path last)
  validate      evaluate on data.validate; prints metrics as one JSON line
  test          evaluate on data.test; prints metrics as one JSON line
  predict       write predictions for data.predict to prediction_writer.path/rank-0.parquet
  print-config  print the resolved config, defaults filled
  bench encode  measure encoding throughput: --input FILE (any format data.train takes)
  bench stream  measure a streamed epoch (read, shuffle, encode, batch) of data.streaming's
                train split, without training
  bench engine  measure the engine's own time per step: one epoch of fit against a bare
                training loop over the same batches
  bench gemm    measure the float matrix-product rate json2vec's own GEMM reaches here:
                [--threads N (all cores) --seconds 0.5 --float32_matmul_precision highest];
                the training benchmarks' FLOP bound
  convert       copy records between formats: --input FILE --output FILE (.parquet, .csv,
                .jsonl, .json; nested values kept), e.g. JSON Lines to Parquet
  generate orders
                write synthetic nested orders as JSON Lines: [--rows 1000 --seed 0
                --max_items 32 --flatten true --output FILE] (stdout by default)
  serve         serve a checkpoint over HTTP: --ckpt_path FILE [--port 8000 ...]
                (`json2vec serve --help` lists its options)
  infer-schema  print a config whose model.fields are inferred from records, each decision
                explained: FILE [--target NAME] [--sample 10000] [--name record]
  importance    test loss and metrics with each input field or branch switched off:
                --config FILE --ckpt_path PATH|best [--output importance]; writes
                importance.csv and importance.svg

fit without model.fields infers them from data.train (model.target names the target);
model.init_from=CKPT starts a fit from another model's matching fields and weights.
predict and serve take --override ADDRESS.OPTION=VALUE (e.g. record.amount.active=false),
applied to the checkpoint's schema at start-up.

Every config key can be given on the command line as --section.key=value (or
--section.key value). `json2vec --help` lists every key; `json2vec fit --print_config`
prints the resolved config and exits.
)";

struct Args {
  std::string command;
  std::optional<std::string> config;
  std::optional<std::string> ckpt_path;
  std::optional<std::string> input;
  std::vector<std::string> overrides;
  std::vector<std::string> schema_overrides;  // --override ADDRESS.OPTION=VALUE
  bool help = false;
  bool print_config = false;
};

Args parse_args(int argc, char** argv) {
  Args args;
  int i = 1;
  if (i < argc && argv[i][0] != '-') args.command = argv[i++];
  if (args.command == "infer-schema" && i < argc && argv[i][0] != '-') args.input = argv[i++];
  if (args.command == "bench" || args.command == "generate") {
    if (i < argc && argv[i][0] != '-') args.command += std::string(" ") + argv[i++];
    else if (args.command == "bench") throw ConfigError("bench needs a benchmark name: `json2vec bench encode ...`");
    else throw ConfigError("generate needs a dataset name: `json2vec generate orders ...`");
  }
  auto take_value = [&](const std::string& flag, std::string& inline_value, bool has_inline) -> std::string {
    if (has_inline) return inline_value;
    if (i + 1 >= argc) throw ConfigError("option " + flag + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      args.help = true;
      continue;
    }
    if (arg == "--print_config" || arg == "--print-config") {
      args.print_config = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw ConfigError("unexpected argument '" + arg + "' (options start with --)");
    std::string body = arg.substr(2);
    auto eq = body.find('=');
    std::string key = body.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : body.substr(eq + 1);
    bool has_inline = eq != std::string::npos;
    if (key == "config") args.config = take_value(arg, value, has_inline);
    else if (key == "ckpt_path") args.ckpt_path = take_value(arg, value, has_inline);
    else if (key == "input") args.input = take_value(arg, value, has_inline);
    else if (key == "override") args.schema_overrides.push_back(take_value(arg, value, has_inline));
    else args.overrides.push_back(key + "=" + take_value(arg, value, has_inline));
  }
  return args;
}

}  // namespace

Model build_model(const json& cfg) {
  const json& m = cfg["model"];
  Schema schema = Schema::from_fields_json(m["name"].get<std::string>(), m["fields"]);
  return Model::from_schema(std::move(schema), model_options(cfg));
}

namespace {

// data.streaming's keys are StreamingDataOptions' declaration, less those it shares with the
// data section (batch_size, num_workers, seed, validate_fraction), which come from there.
StreamingDataOptions streaming_options(const json& streaming, const json& d) {
  const auto& common = StreamingDataOptions::common_keys();
  auto shared = [&](const std::string& key) { return std::find(common.begin(), common.end(), key) != common.end(); };
  if (!streaming.is_object()) throw ConfigError("config key 'data.streaming': expected a mapping (root, suffix, train, ...)");
  std::vector<std::string> own;
  for (const auto& p : StreamingDataOptions::own_parameters()) own.push_back(p.name);
  json args = json::object();
  for (const auto& [key, value] : streaming.items()) {
    if (shared(key))
      throw ConfigError(fmt::format("config key 'data.streaming.{}': set it as data.{}, which both data modules read", key, key));
    if (std::find(own.begin(), own.end(), key) == own.end())
      throw ConfigError(fmt::format("unknown config key 'data.streaming.{}'; allowed: {}", key, fmt::join(own, ", ")));
    if (!value.is_null()) args[key] = value;  // null keeps the default
  }
  for (const auto& key : common) args[key] = d[key];
  if (!d["shuffle"].get<bool>() && !args.contains("shuffle_buffer")) args["shuffle_buffer"] = 0;
  try {
    return StreamingDataOptions::parameters().from_json(args, "data.streaming");
  } catch (const ParameterError& e) {
    throw ConfigError(e.what());
  }
}

// The rank of this process among those sharing a stream: its predictions go to rank-N.
int64_t streaming_rank(const json& cfg) {
  const json& streaming = cfg["data"]["streaming"];
  if (!streaming.is_object() || !streaming.contains("rank") || !streaming["rank"].is_number_integer()) return 0;
  return streaming["rank"].get<int64_t>();
}

}  // namespace

std::unique_ptr<engine::DataModule> build_data(const Model& model, const json& cfg) {
  const json& d = cfg["data"];
  if (!d["streaming"].is_null() && !d["streaming"].empty()) {
    for (const char* key : {"train", "validate", "test", "predict", "sql"})
      if (!d[key].is_null())
        throw ConfigError(fmt::format("config keys 'data.{}' and 'data.streaming' exclude each other: with streaming, "
                                      "each split is a pattern under data.streaming.root (data.streaming.{})",
                                      key, key));
    return std::make_unique<StreamingDataModule>(model.codec(), streaming_options(d["streaming"], d));
  }
  TableSplits splits;
  auto split = [&](const char* key) -> std::optional<RecordSource> {
    if (d[key].is_null()) return std::nullopt;
    return RecordSource::file(d[key].get<std::string>());
  };
  splits.train = split("train");
  if (!d["sql"].is_null()) {
    if (splits.train) throw ConfigError("config keys 'data.train' and 'data.sql' exclude each other: both give the training records");
    splits.train = RecordSource::query(d["sql"].get<std::string>());
  }
  splits.validate = split("validate");
  splits.test = split("test");
  splits.predict = split("predict");
  json data_args = json::object();
  for (const auto& p : TableDataOptions::parameters().info()) data_args[p.name] = d[p.name];
  TableDataOptions options = TableDataOptions::parameters().from_json(data_args, "data");
  return std::make_unique<TableDataModule>(model.codec(), std::move(splits), options);
}

namespace {

// The engine's registries, as the config resolver sees them.
const ComponentCatalog& component_catalog() {
  static const ComponentCatalog catalog{[](const std::string& kind, const std::string& class_path, const json& init_args,
                                           const std::string& where) -> json {
    if (kind == "model") return engine::modules().complete(class_path, init_args, where);
    if (kind == "data") return engine::data_modules().complete(class_path, init_args, where);
    if (kind == "optimizer") return engine::optimizers().complete(class_path, init_args, where);
    if (kind == "lr_scheduler") return engine::schedulers().complete(class_path, init_args, where);
    if (kind == "callback") return engine::callbacks().complete(class_path, init_args, where);
    if (kind == "logger") return engine::loggers().complete(class_path, init_args, where);
    throw std::logic_error("unknown component kind " + kind);
  }};
  return catalog;
}

// Writes the resolved config into the run directory as soon as fit has made it (after
// Lightning's SaveConfigCallback), so a crashed run still says how it was started.
class SaveConfig : public engine::Callback {
 public:
  explicit SaveConfig(json config) : config_(std::move(config)) {}
  std::string state_key() const override { return "SaveConfig"; }
  void on_fit_start(engine::Trainer& trainer, engine::Module&) override {
    if (trainer.run_dir().empty()) return;
    std::string path = (fs::path(trainer.run_dir()) / "config.yaml").string();
    write_file_atomically(path, to_yaml(config_));
  }

 private:
  json config_;
};

// An optimizer (and lr_scheduler) given in the config replaces the module's own
// configure_optimizers, as in LightningCLI.
bool optimizer_is_configured(const json& cfg) {
  return cfg["optimizer"].contains("class_path") || !cfg["lr_scheduler"].is_null();
}

}  // namespace

void use_configured_optimizer(const json& cfg, engine::Trainer& trainer) {
  if (!optimizer_is_configured(cfg)) return;
  const json& optimizer = cfg["optimizer"];
  const json& scheduler = cfg["lr_scheduler"];
  bool optimizer_component = optimizer.contains("class_path");
  std::string optimizer_class;
  json optimizer_args;
  if (optimizer_component) {
    optimizer_class = optimizer["class_path"].get<std::string>();
    optimizer_args = optimizer["init_args"];
  } else {  // json2vec's shorthand optimizer section, with a scheduler from the registry
    optimizer_class = optimizer["name"].get<std::string>();
    optimizer_args = {{"lr", optimizer["lr"]}, {"weight_decay", optimizer["weight_decay"]}};
    if (optimizer_class == "sgd") optimizer_args["momentum"] = optimizer["momentum"];
  }
  std::string scheduler_class = scheduler.is_null() ? "" : scheduler["class_path"].get<std::string>();
  json scheduler_args = scheduler.is_null() ? json::object() : scheduler["init_args"];
  trainer.set_optimizer_factory([=, &trainer](engine::Module& module) {
    return std::vector<engine::OptimizerConfig>{
        engine::make_optimizer_config(optimizer_class, optimizer_args, scheduler_class, scheduler_args, module, trainer)};
  });
}

namespace {

// The config as it takes effect, for --print_config, config.yaml and checkpoints: json2vec's
// `scheduler` section is left out where a configured optimizer or lr_scheduler replaces it,
// or where the model is not json2vec's, so nobody reads a schedule that isn't run.
json effective_config(json cfg) {
  if (cfg["model"].contains("class_path") || optimizer_is_configured(cfg)) cfg.erase("scheduler");
  return cfg;
}

}  // namespace

engine::TrainerOptions build_trainer_options(const json& cfg, const std::string& command) {
  const json& t = cfg["trainer"];
  const json effective = effective_config(cfg);
  // The declared keys as the config holds them; the CLI's own forms (logger lists, callbacks,
  // weight_averaging) are built below.
  json declared = json::object();
  for (const auto& p : engine::TrainerOptions::parameters().info())
    if (t.contains(p.name)) declared[p.name] = t[p.name];
  if (!t["logger"].is_boolean()) declared["logger"] = !t["logger"].empty();
  engine::TrainerOptions o = engine::TrainerOptions::parameters().from_json(declared, "trainer");
  o.config(effective);
  if (t["logger"].is_array()) {
    std::vector<std::shared_ptr<engine::Logger>> loggers;
    for (const auto& logger : t["logger"])
      loggers.push_back(engine::loggers().make_completed(logger["class_path"].get<std::string>(), logger["init_args"]));
    o.loggers(loggers);
  }
  std::vector<std::shared_ptr<engine::Callback>> callbacks;
  // A callback listed in trainer.callbacks replaces the one its own section would add.
  auto listed = [&](const std::string& name) {
    for (const auto& callback : t["callbacks"])
      if (engine::callbacks().find(callback["class_path"].get<std::string>()).name == name) return true;
    return false;
  };
  if (command == "fit") callbacks.push_back(std::make_shared<SaveConfig>(effective));
  if (command == "fit" && t["weight_averaging"].get<double>() > 0 && !listed("WeightAveraging"))
    callbacks.push_back(std::make_shared<engine::WeightAveraging>(
        engine::WeightAveragingOptions().decay(t["weight_averaging"].get<double>())));
  if (command == "fit") {
    if (o.enable_checkpointing() && !listed("ModelCheckpoint")) {
      callbacks.push_back(std::make_shared<engine::ModelCheckpoint>(
          engine::ModelCheckpointOptions::parameters().from_json(cfg["checkpoint"], "checkpoint")));
    }
    json e = cfg["early_stopping"];
    bool enabled = e["enabled"].get<bool>();
    e.erase("enabled");
    e.erase("refit");
    if (enabled && !listed("EarlyStopping"))
      callbacks.push_back(std::make_shared<engine::EarlyStopping>(
          engine::EarlyStoppingOptions::parameters().from_json(e, "early_stopping")));
  }
  if (command == "predict") {
    auto writer = engine::PredictionWriterOptions::parameters().from_json(cfg["prediction_writer"], "prediction_writer");
    callbacks.push_back(std::make_shared<engine::PredictionWriter>(writer.local_rank(streaming_rank(cfg))));
  }
  for (const auto& callback : t["callbacks"]) {
    auto made = engine::callbacks().make_completed(callback["class_path"].get<std::string>(), callback["init_args"]);
    // The moving average must be swapped in before checkpoints are written: it goes first.
    if (dynamic_cast<engine::WeightAveraging*>(made.get())) callbacks.insert(callbacks.begin(), made);
    else callbacks.push_back(made);
  }
  o.callbacks(callbacks);
  return o;
}

namespace {

// What predict wrote, one JSON line per prediction writer: its file and row count.
void print_written_predictions(engine::Trainer& trainer) {
  for (auto& cb : trainer.callbacks())
    if (auto* writer = dynamic_cast<engine::PredictionWriter*>(cb.get()))
      std::cout << json{{"path", writer->output_path()}, {"rows", writer->rows_written()}}.dump() << std::endl;
}

// Every rank of a data-parallel run has the same metrics: rank 0 prints them.
void print_metrics(const engine::Trainer& trainer, const std::map<std::string, double>& metrics) {
  if (!trainer.is_global_zero()) return;
  json out = json::object();
  for (const auto& [k, v] : metrics) out[k] = v;
  std::cout << out.dump() << std::endl;
}

int bench_encode(const Args& args, const json& cfg) {
  if (!args.input) throw ConfigError("bench encode needs --input FILE");
  Model model = build_model(cfg);
  auto& codec = *model.codec();
  int threads = resolve_threads(cfg["data"]["num_workers"].get<int>());
  auto buffer = RecordBuffer::from_file(*args.input);
  codec.fit(*buffer, nullptr, threads);
  double best = 1e300;
  for (int run = 0; run < 5; ++run) {
    auto start = std::chrono::steady_clock::now();
    auto table = codec.encode(buffer, nullptr, threads);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds);
  }
  double n = static_cast<double>(buffer->size());
  std::cout << json{{"records", buffer->size()},
                    {"bytes", buffer->bytes()},
                    {"threads", threads},
                    {"seconds", best},
                    {"records_per_second", n / best},
                    {"records_per_second_per_thread", n / best / threads}}
                   .dump()
            << std::endl;
  return 0;
}

// One epoch of the training stream, timed: the rate at which batches reach training.
int bench_stream(const json& cfg) {
  if (cfg["data"]["streaming"].is_null() || cfg["data"]["streaming"].empty())
    throw ConfigError("bench stream reads data.streaming (root, suffix, train, ...): set it in the config");
  Model model = build_model(cfg);
  auto data = build_data(model, cfg);
  auto start = std::chrono::steady_clock::now();
  data->setup(engine::Stage::kFit);
  double stats_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto loader = data->train_dataloader();
  if (loader->endless()) throw ConfigError("bench stream needs a stream that ends: data.streaming.replacement is true");
  start = std::chrono::steady_clock::now();
  loader->start_epoch(0);
  int64_t records = 0, batches = 0;
  while (auto batch = loader->next()) {
    records += batch->size();
    ++batches;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << json{{"records", records},
                    {"batches", batches},
                    {"seconds", seconds},
                    {"records_per_second", static_cast<double>(records) / seconds},
                    {"fit_fields_seconds", stats_seconds}}
                   .dump()
            << std::endl;
  return 0;
}

// Marks the training epoch's span, from the first batch to the end of the epoch's callbacks
// (checkpoints included), so data setup and field statistics stay out of the figure.
class EpochSpan : public engine::Callback {
 public:
  std::string state_key() const override { return "EpochSpan"; }
  void on_train_batch_start(engine::Trainer&, engine::Module&, engine::Batch&, int64_t) override {
    if (!started_) start_ = std::chrono::steady_clock::now();
    started_ = true;
  }
  void on_train_epoch_end(engine::Trainer&, engine::Module&) override { end_ = std::chrono::steady_clock::now(); }
  double seconds() const { return std::chrono::duration<double>(end_ - start_).count(); }

 private:
  bool started_ = false;
  std::chrono::steady_clock::time_point start_, end_;
};

// The engine's own cost per step: one epoch of fit (callbacks, logging, checkpoints,
// scheduler) against a bare loop of the same steps on the same batches.
int bench_engine(const json& cfg) {
  int threads = static_cast<int>(cfg["trainer"]["num_threads"].get<int64_t>() > 0
                                     ? cfg["trainer"]["num_threads"].get<int64_t>()
                                     : available_cores());
  auto bare = [&]() {
    Model model = build_model(cfg);
    auto data = build_data(model, cfg);
    data->setup(engine::Stage::kFit);  // fits the codec
    engine::Module& module = model;
    module.setup(engine::Stage::kFit);  // builds the network for it, as the Trainer does
    torch::set_num_threads(threads);
    torch::manual_seed(0);
    auto configs = module.configure_optimizers();
    auto loader = data->train_dataloader();
    loader->start_epoch(0);
    module.train();
    double clip = cfg["trainer"]["gradient_clip_val"].get<double>();
    int64_t steps = 0;
    auto start = std::chrono::steady_clock::now();
    while (auto batch = loader->next()) {
      auto loss = module.training_step(*batch, steps);
      if (!loss.defined()) continue;
      loss.backward();
      if (clip > 0) torch::nn::utils::clip_grad_norm_(module.parameters(), clip);
      for (auto& c : configs) {
        c.optimizer->step();
        c.optimizer->zero_grad();
        if (c.scheduler) c.scheduler->step();
      }
      ++steps;
    }
    return std::make_pair(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), steps);
  };
  double engine_own = 1e300, model_step = 1e300;
  auto with_engine = [&]() {
    Model model = build_model(cfg);
    auto data = build_data(model, cfg);
    auto options = build_trainer_options(cfg, "fit");
    auto span = std::make_shared<EpochSpan>();
    auto callbacks = options.callbacks();
    callbacks.push_back(span);
    std::string root = (fs::temp_directory_path() / ("j2v_bench_engine_" + std::to_string(::getpid()))).string();
    // On the module itself, as the bare loop runs: `auto` would train on a replica per core,
    // whose steps overlap in the profile.
    options.callbacks(callbacks).max_epochs(1).limit_val_batches(engine::BatchLimit::count(0)).default_root_dir(root)
        .enable_progress_bar(false).handle_signals(false).profiler("simple").strategy("single_device");
    engine::Trainer trainer(options);
    trainer.fit(model, *data);
    fs::remove_all(root);
    // The same work the bare loop does, timed inside the engine: the rest of the epoch's span
    // is the engine's own (callbacks, logging, checkpoints, bookkeeping).
    double model_work = 0;
    for (const char* action :
         {"training_step", "backward", "optimizer_step", "clip_gradients", "zero_grad", "train_dataloader_next"}) {
      auto it = trainer.profiler().stats().find(action);
      if (it != trainer.profiler().stats().end()) model_work += it->second.seconds;
    }
    engine_own = std::min(engine_own, (span->seconds() - model_work) / std::max<int64_t>(trainer.global_step(), 1));
    model_step = std::min(model_step, model_work / std::max<int64_t>(trainer.global_step(), 1));
    return std::make_pair(span->seconds(), trainer.global_step());
  };
  // Interleaved rounds, best of each: this machine's other load only ever adds time.
  double best_bare = 1e300, best_engine = 1e300;
  int64_t steps = 0;
  for (int round = 0; round < 5; ++round) {
    auto [b, n] = bare();
    auto [e, m] = with_engine();
    if (n != m) throw std::logic_error(fmt::format("bench engine: {} bare steps but {} engine steps", n, m));
    best_bare = std::min(best_bare, b / n);
    best_engine = std::min(best_engine, e / m);
    steps = n;
  }
  std::cout << json{{"steps_per_epoch", steps},
                    {"bare_ms_per_step", 1000 * best_bare},
                    {"engine_ms_per_step", 1000 * best_engine},
                    {"overhead_percent", 100 * (best_engine - best_bare) / best_bare},
                    // Measured inside one run, so other load on the machine cancels out.
                    {"engine_own_ms_per_step", 1000 * engine_own},
                    {"engine_own_percent_of_step", 100 * engine_own / model_step}}
                   .dump()
            << std::endl;
  return 0;
}

int generate_orders(const Args& args) {
  SyntheticOrdersOptions o;
  std::string output;
  auto integer = [](const std::string& key, const std::string& value, int64_t min) {
    try {
      size_t used = 0;
      int64_t v = std::stoll(value, &used);
      if (used == value.size() && v >= min) return v;
    } catch (const std::exception&) {
    }
    throw ConfigError(fmt::format("--{} expects an integer >= {}, got '{}'", key, min, value));
  };
  for (const auto& kv : args.overrides) {
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "rows") o.rows = integer(key, value, 0);
    else if (key == "seed") o.seed = static_cast<uint64_t>(integer(key, value, 0));
    else if (key == "max_items") o.max_items = integer(key, value, 1);
    else if (key == "flatten") {
      if (value != "true" && value != "false") throw ConfigError("--flatten expects true or false, got '" + value + "'");
      o.flatten = value == "true";
    } else if (key == "output") output = value;
    else
      throw ConfigError("generate orders: unknown option --" + key +
                        " (allowed: --rows, --seed, --max_items, --flatten, --output)");
  }
  if (output.empty()) {
    write_synthetic_orders(std::cout, o);
    return 0;
  }
  // Written beside the target and renamed, so a failed run never leaves half a file.
  try {
    write_file_atomically(output, [&](std::ostream& out) { write_synthetic_orders(out, o); });
  } catch (const AtomicFileError& e) {
    throw ConfigError(e.what());  // names `output`: "cannot write '<output>' ..."
  }
  return 0;
}

// Runs fit and prints its final metrics as one JSON line; an interrupted fit says where its
// resumable checkpoint is and exits with 128 + the signal, as a shell expects.
// refit (json2vec's own model): a refit on every training row after the fit, whose
// summary joins the line under "refit".
int run_fit(engine::Trainer& trainer, engine::Module& module, engine::DataModule& data,
            const std::optional<std::string>& ckpt_path,
            const std::function<std::optional<json>()>& refit = nullptr) {
  trainer.fit(module, data, ckpt_path);
  json out = json::object();
  for (const auto& [k, v] : trainer.callback_metrics())
    if (k.find("/validate") != std::string::npos || k.find("/train") != std::string::npos) out[k] = v;
  out["epoch"] = trainer.current_epoch();
  out["global_step"] = trainer.global_step();
  if (trainer.interrupted_by()) {
    out["interrupted"] = engine::signal_name(trainer.interrupted_by());
    out["checkpoint"] = trainer.interrupt_checkpoint();
    if (trainer.is_global_zero()) std::cout << out.dump() << std::endl;
    return 128 + trainer.interrupted_by();
  }
  std::optional<json> refitted = refit ? refit() : std::nullopt;
  if (refitted) out["refit"] = *refitted;
  if (trainer.is_global_zero()) std::cout << out.dump() << std::endl;
  if (refitted && refitted->contains("interrupted")) return 128 + (*refitted)["signal"].get<int>();
  return 0;
}

// A run whose model and data module come from the registries (class_path), with
// link_arguments applied when they are built.
int run_component_command(const Args& args, json cfg) {
  const std::string& cmd = args.command;
  if (cmd != "fit" && !args.ckpt_path) throw ConfigError(cmd + " needs trained weights: pass --ckpt_path PATH|last|best");
  const json& d = cfg["data"];
  auto data = engine::data_modules().make_completed(d["class_path"].get<std::string>(), d["init_args"]);
  for (const auto& link : cfg["link_arguments"]) {
    std::string source = link["source"].get<std::string>().substr(5);
    std::string target = link["target"].get<std::string>().substr(16);
    json value;
    try {
      value = data->property(source);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(fmt::format("link_arguments: source 'data.{}': {}", source, e.what()));
    }
    cfg["model"]["init_args"][target] = value;
  }
  const json& m = cfg["model"];
  json model_args;
  try {
    model_args = engine::modules().complete(m["class_path"].get<std::string>(), m["init_args"], "model.init_args");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("link_arguments: {}", e.what()));
  }
  cfg["model"]["init_args"] = model_args;
  auto model = engine::modules().make_completed(m["class_path"].get<std::string>(), model_args);
  engine::Trainer trainer(build_trainer_options(cfg, cmd));
  use_configured_optimizer(cfg, trainer);
  if (cmd == "fit") return run_fit(trainer, *model, *data, args.ckpt_path);
  if (cmd == "validate") print_metrics(trainer, trainer.validate(*model, *data, args.ckpt_path));
  else if (cmd == "test") print_metrics(trainer, trainer.test(*model, *data, args.ckpt_path));
  else {
    auto rows = trainer.predict(*model, *data, args.ckpt_path, false);
    print_written_predictions(trainer);
  }
  return 0;
}

std::string components_help() {
  std::string out = "\ncomponents (class_path, or _target_, in model, data, optimizer, lr_scheduler, trainer.callbacks, "
                    "trainer.logger):\n";
  auto list = [&](const char* kind, const auto& registry) {
    out += fmt::format("  {}:\n", kind);
    for (const auto& name : registry.names()) {
      const auto& entry = registry.find(name);
      out += fmt::format("    {:<20} {}\n", name, entry.help);
      if (!entry.defaults.empty()) out += fmt::format("    {:<20} init_args: {}\n", "", entry.defaults.dump());
    }
  };
  list("model", engine::modules());
  list("data", engine::data_modules());
  list("optimizer", engine::optimizers());
  list("lr_scheduler", engine::schedulers());
  list("trainer.callbacks", engine::callbacks());
  list("trainer.logger", engine::loggers());
  out += "  link_arguments: [{source: data.PROPERTY, target: model.init_args.NAME}] sets a model argument from its "
         "data module when both are built\n";
  return out;
}

int run_command(const Args& args) {
  const std::string& cmd = args.command;
  static const std::vector<std::string> known = {"fit",          "validate",     "test", "predict",
                                                 "print-config", "bench encode", "bench stream", "bench engine", "bench gemm", "bench attention", "serve", "generate orders",
                                                 "convert", "infer-schema", "importance"};
  if (std::find(known.begin(), known.end(), cmd) == known.end())
    throw ConfigError(fmt::format("unknown command '{}' (allowed: {})", cmd, fmt::join(known, ", ")));
  if (cmd == "convert") {
    std::string output;
    for (const auto& kv : args.overrides) {
      auto eq = kv.find('=');
      if (kv.substr(0, eq) == "output") output = kv.substr(eq + 1);
      else throw ConfigError("convert takes --input FILE --output FILE, not --" + kv.substr(0, eq));
    }
    if (!args.input || output.empty()) throw ConfigError("convert needs --input FILE and --output FILE");
    int64_t rows = io::convert_file(*args.input, output);
    std::cout << json{{"path", output}, {"rows", rows}}.dump() << std::endl;
    return 0;
  }
  if (cmd == "infer-schema") {
    if (args.config || args.ckpt_path) throw ConfigError("infer-schema reads records only: json2vec infer-schema FILE [--target NAME]");
    return run_infer_schema(args.input.value_or(""), args.overrides);
  }
  if (!args.schema_overrides.empty() && cmd != "predict" && cmd != "serve")
    throw ConfigError("--override applies to predict and serve (a checkpoint's schema at start-up); to change the schema "
                      "of a fit, edit model.fields");
  if (cmd == "generate orders") {
    if (args.config || args.ckpt_path || args.input) throw ConfigError("generate orders takes only its own options");
    return generate_orders(args);
  }
  if (cmd == "bench gemm") {
    if (args.config || args.ckpt_path || args.input) throw ConfigError("bench gemm takes only --threads N, --seconds S and --float32_matmul_precision P");
    return run_bench_gemm(args.overrides);
  }
  if (cmd == "bench attention") {
    if (args.config || args.ckpt_path || args.input)
      throw ConfigError("bench attention takes only --items, --keys, --dropout, --absent and --rounds");
    return run_bench_attention(args.overrides);
  }
  // serve takes its model, schema included, from the checkpoint: no config to resolve.
  if (cmd == "serve") {
    if (args.config || args.print_config)
      throw ConfigError("serve reads everything it needs from the checkpoint: it takes no --config");
    if (args.input) throw ConfigError("serve takes no --input: records arrive over HTTP");
    return run_serve(args.ckpt_path, args.overrides, args.schema_overrides);
  }
  bool print_only = cmd == "print-config" || args.print_config;
  // fit may leave model.fields out: they are inferred from data.train below.
  bool infers = false;
  std::vector<std::string> resolver_overrides;
  for (const auto& kv : args.overrides) {
    std::string key = kv.substr(0, kv.find('='));
    if (key == "output" && cmd == "importance") continue;
    resolver_overrides.push_back(kv);
  }
  json cfg = resolve_config(args.config, resolver_overrides, !print_only && cmd != "fit" && cmd != "importance",
                            &component_catalog());
  if (!print_only && !cfg["model"].contains("class_path") && cfg["model"]["fields"].empty()) {
    if (cmd != "fit") {
      if (cmd != "importance")
        throw ConfigError("config key 'model.fields' is required: map each field name to a type or options mapping");
    } else {
      infer_missing_fields(cfg);
      infers = true;
    }
  }
  if (!print_only && !infers && cfg["model"].contains("target") && !cfg["model"]["target"].is_null() &&
      !cfg["model"].contains("class_path")) {
    // model.target with fields given: marks that field the target.
    std::string target = cfg["model"]["target"].get<std::string>();
    if (!cfg["model"]["fields"].contains(target)) {
      std::vector<std::string> names;
      for (const auto& [k, _] : cfg["model"]["fields"].items()) names.push_back(k);
      throw ConfigError(fmt::format("model.target '{}' is not among model.fields ({})", target, fmt::join(names, ", ")));
    }
    json& field = cfg["model"]["fields"][target];
    if (field.is_string()) field = json{{"type", field}};
    field["target"] = true;
  }
  if (print_only) {
    std::cout << to_yaml(effective_config(cfg));
    return 0;
  }
  if (cfg["model"].contains("class_path")) {
    if (cmd != "fit" && cmd != "validate" && cmd != "test" && cmd != "predict")
      throw ConfigError(cmd + " works on json2vec's own model (model.fields), not on model.class_path");
    return run_component_command(args, cfg);
  }
  if (cmd == "bench encode") return bench_encode(args, cfg);
  if (cmd == "bench stream") return bench_stream(cfg);
  if (cmd == "bench engine") return bench_engine(cfg);
  if (cmd != "fit" && !args.ckpt_path)
    throw ConfigError(cmd + " needs trained weights: pass --ckpt_path PATH|last|best");
  if (cmd == "importance") {
    std::string output = "importance";
    for (const auto& kv : args.overrides)
      if (kv.rfind("output=", 0) == 0) output = kv.substr(7);
    return run_importance(cfg, *args.ckpt_path, output);
  }
  if (cmd == "predict" && !args.schema_overrides.empty()) {
    // The checkpoint's model with the overrides applied, then predicted like any other.
    engine::Trainer trainer(build_trainer_options(cfg, cmd));
    Model model = Model::load(trainer.resolve_checkpoint(*args.ckpt_path));
    apply_schema_overrides(model, args.schema_overrides);
    auto data = build_data(model, cfg);
    trainer.predict(model, *data, std::nullopt, false);
    print_written_predictions(trainer);
    return 0;
  }

  auto make_model = [&](const json& config) {
    Model made = build_model(config);
    if (cmd == "fit" && !args.ckpt_path && config["model"].contains("init_from") &&
        !config["model"]["init_from"].is_null()) {
      auto change = made.init_from(config["model"]["init_from"].get<std::string>());
      std::cerr << "fit: model.init_from " << config["model"]["init_from"].get<std::string>() << ": "
                << change.summary();
    }
    return made;
  };
  Model model = make_model(cfg);
  std::unique_ptr<engine::DataModule> data_module = build_data(model, cfg);
  engine::DataModule& data = *data_module;
  engine::Trainer trainer(build_trainer_options(cfg, cmd));
  use_configured_optimizer(cfg, trainer);
  if (cmd == "fit") {
    return run_fit(trainer, model, data, args.ckpt_path,
                   [&] { return refit_on_all_rows(cfg, trainer, data, make_model); });
  } else if (cmd == "validate") {
    print_metrics(trainer, trainer.validate(model, data, args.ckpt_path));
  } else if (cmd == "test") {
    print_metrics(trainer, trainer.test(model, data, args.ckpt_path));
  } else if (cmd == "predict") {
    trainer.predict(model, data, args.ckpt_path, false);
    print_written_predictions(trainer);
  }
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
    if (args.help && args.command == "serve") {
      std::cout << serve_help();
      return 0;
    }
    if (args.help || args.command.empty()) {
      std::cout << kUsage << "\nfield types: " << fmt::format("{}", fmt::join(datatype_names(), ", "))
                << ", branch (a list of sub-records: fields, length, overflow, n_layers, attention, n_kv_heads)\n\n"
                << config_help() << components_help();
      return args.command.empty() && !args.help ? 2 : 0;
    }
    return run_command(args);
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const SchemaError& e) {
    std::cerr << "error: schema: " << e.what() << std::endl;
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const DataError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const engine::CheckpointError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const io::WriteError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::string what = e.what();
    std::cerr << "error: " << what.substr(0, what.find('\n')) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace j2v::cli
