#include "engine/components.h"

#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/learning_rate_monitor.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/callbacks/progress_bar.h"
#include "engine/callbacks/rollback_to_best.h"
#include "engine/callbacks/timer.h"
#include "engine/callbacks/weight_averaging.h"
#include "engine/loggers/tensorboard_logger.h"
#include "engine/optimizers/fused_adam.h"
#include "engine/trainer.h"

namespace j2v::engine {

namespace {
using json = nlohmann::json;

// Names an options struct for a registration helper.
template <typename T>
struct OptionsOf {
  using type = T;
};

// A logger whose directory defaults to the run's, which exists only once fit starts.
class RunDirectoryLogger : public Logger {
 public:
  explicit RunDirectoryLogger(std::function<std::shared_ptr<Logger>(const std::string&)> make)
      : make_(std::move(make)) {}
  void set_run_dir(const std::string& run_dir) override {
    if (!inner_) inner_ = make_(run_dir);
  }
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override {
    if (inner_) inner_->log_metrics(metrics, step);
  }
  void log_hyperparams(const json& params) override {
    if (inner_) inner_->log_hyperparams(params);
  }
  void save() override {
    if (inner_) inner_->save();
  }
  void finalize() override {
    if (inner_) inner_->finalize();
  }

 private:
  std::function<std::shared_ptr<Logger>(const std::string&)> make_;
  std::shared_ptr<Logger> inner_;
};

std::string directory_or(const json& args, const std::string& run_dir) {
  return args["save_dir"].is_null() ? run_dir : args["save_dir"].get<std::string>();
}

void register_callbacks(CallbackRegistry& r) {
  // Callbacks whose options are declared: defaults, checks and help come from the declaration.
  auto declared = [&r](const std::string& name, const std::string& help, auto options_type, auto make,
                       std::vector<std::string> aliases) {
    using Options = typename decltype(options_type)::type;
    r.add({name, help, Options::parameters().to_json(),
           [name, make](const json& a) -> std::shared_ptr<Callback> {
             return make(Options::parameters().from_json(a, name + ".init_args"));
           },
           std::move(aliases)});
  };
  declared("ModelCheckpoint", "keep the best save_top_k checkpoints by a monitored metric, and last.ckpt",
           OptionsOf<ModelCheckpointOptions>{},
           [](const ModelCheckpointOptions& o) { return std::make_shared<ModelCheckpoint>(o); },
           {"lightning.pytorch.callbacks.ModelCheckpoint"});
  declared("EarlyStopping", "stop when a monitored metric stops improving", OptionsOf<EarlyStoppingOptions>{},
           [](const EarlyStoppingOptions& o) { return std::make_shared<EarlyStopping>(o); },
           {"lightning.pytorch.callbacks.EarlyStopping"});
  declared("LearningRateMonitor", "log each optimizer's learning rate as lr-<name>",
           OptionsOf<LearningRateMonitorOptions>{},
           [](const LearningRateMonitorOptions& o) { return std::make_shared<LearningRateMonitor>(o); },
           {"lightning.pytorch.callbacks.LearningRateMonitor"});
  r.add({"Timer", "stop fit after a wall-clock budget: duration \"DD:HH:MM:SS\" or seconds",
         {{"duration", nullptr}, {"interval", "step"}},
         [](const json& a) {
           if (a["duration"].is_null()) throw std::invalid_argument("Timer needs init_args.duration, e.g. \"00:01:00:00\"");
           double seconds = a["duration"].is_number() ? a["duration"].get<double>()
                                                      : parse_duration(a["duration"].get<std::string>());
           return std::make_shared<Timer>(
               TimerOptions().duration_seconds(seconds).interval(a["interval"].get<std::string>()));
         },
         {"lightning.pytorch.callbacks.Timer"}});
  r.add({"RollbackToBest", "at the end of fit, load the best checkpoint's weights back into the model", json::object(),
         [](const json&) { return std::make_shared<RollbackToBest>(); }});
  declared("WeightAveraging", "an exponential moving average of the weights for validation and checkpoints",
           OptionsOf<WeightAveragingOptions>{},
           [](const WeightAveragingOptions& o) { return std::make_shared<WeightAveraging>(o); }, {});
  r.add({"ProgressBar", "a one-line progress bar on a terminal", json::object(),
         [](const json&) { return std::make_shared<ProgressBar>(); }});
  declared("PredictionWriter", "write predict's rows to Parquet or JSON Lines", OptionsOf<PredictionWriterOptions>{},
           [](const PredictionWriterOptions& o) { return std::make_shared<PredictionWriter>(o); },
           {"lightning.pytorch.callbacks.BasePredictionWriter"});
}

void register_loggers(LoggerRegistry& r) {
  r.add({"CSVLogger", "metrics.csv and hparams.yaml (in the run directory unless save_dir is set)",
         {{"save_dir", nullptr}},
         [](const json& a) -> std::shared_ptr<Logger> {
           return std::make_shared<RunDirectoryLogger>(
               [a](const std::string& run_dir) { return std::make_shared<CSVLogger>(directory_or(a, run_dir)); });
         },
         {"lightning.pytorch.loggers.CSVLogger"}});
  r.add({"TensorBoardLogger", "TensorBoard event files (in the run directory unless save_dir is set)",
         {{"save_dir", nullptr}},
         [](const json& a) -> std::shared_ptr<Logger> {
           return std::make_shared<RunDirectoryLogger>([a](const std::string& run_dir) {
             return std::make_shared<TensorBoardLogger>(directory_or(a, run_dir));
           });
         },
         {"lightning.pytorch.loggers.TensorBoardLogger"}});
}

std::pair<double, double> betas_of(const json& a) {
  const json& b = a["betas"];
  if (!b.is_array() || b.size() != 2 || !b[0].is_number() || !b[1].is_number())
    throw std::invalid_argument("optimizer.init_args.betas: expected two numbers, e.g. [0.9, 0.999], got " + b.dump());
  return {b[0].get<double>(), b[1].get<double>()};
}

// One torch parameter group per module group, each with its own weight decay.
template <typename Optimizer, typename Options>
std::shared_ptr<torch::optim::Optimizer> grouped(const std::vector<ParameterGroup>& groups, const Options& options) {
  std::vector<torch::optim::OptimizerParamGroup> torch_groups;
  for (const auto& group : groups) {
    if (group.params.empty()) continue;
    auto group_options = std::make_unique<Options>(options);
    if (!group.weight_decay) group_options->weight_decay(0.0);
    torch_groups.emplace_back(group.params, std::move(group_options));
  }
  return std::make_shared<Optimizer>(std::move(torch_groups), options);
}

// Adam and AdamW take the same arguments; only where weight decay applies differs.
template <typename Optimizer, typename Options>
std::shared_ptr<torch::optim::Optimizer> make_adam(const json& a, std::vector<ParameterGroup> groups) {
  auto [beta1, beta2] = betas_of(a);
  return grouped<Optimizer>(groups, Options(a["lr"].get<double>())
                                        .betas({beta1, beta2})
                                        .eps(a["eps"].get<double>())
                                        .weight_decay(a["weight_decay"].get<double>())
                                        .amsgrad(a["amsgrad"].get<bool>()));
}

void register_optimizers(OptimizerRegistry& r) {
  r.add({"Adam", "Adam",
         {{"lr", 0.001}, {"betas", {0.9, 0.999}}, {"eps", 1e-8}, {"weight_decay", 0.0}, {"amsgrad", false}},
         make_adam<FusedAdam, torch::optim::AdamOptions>, {"torch.optim.Adam", "adam"}});
  r.add({"AdamW", "Adam with decoupled weight decay",
         {{"lr", 0.001}, {"betas", {0.9, 0.999}}, {"eps", 1e-8}, {"weight_decay", 0.01}, {"amsgrad", false}},
         make_adam<FusedAdamW, torch::optim::AdamWOptions>, {"torch.optim.AdamW", "adamw"}});
  r.add({"SGD", "stochastic gradient descent with momentum",
         {{"lr", 0.01}, {"momentum", 0.0}, {"dampening", 0.0}, {"weight_decay", 0.0}, {"nesterov", false}},
         [](const json& a, std::vector<ParameterGroup> groups) -> std::shared_ptr<torch::optim::Optimizer> {
           return grouped<torch::optim::SGD>(groups, torch::optim::SGDOptions(a["lr"].get<double>())
                                                         .momentum(a["momentum"].get<double>())
                                                         .dampening(a["dampening"].get<double>())
                                                         .weight_decay(a["weight_decay"].get<double>())
                                                         .nesterov(a["nesterov"].get<bool>()));
         },
         {"torch.optim.SGD", "sgd"}});
}

// Every scheduler's defaults carry how the Trainer steps it.
json stepping(json defaults, const char* interval, json monitor = nullptr) {
  defaults["interval"] = interval;
  defaults["frequency"] = 1;
  defaults["monitor"] = std::move(monitor);
  return defaults;
}

void register_schedulers(SchedulerRegistry& r) {
  r.add({"StepLR", "multiply the lr by gamma every step_size steps (of its interval)",
         stepping({{"step_size", nullptr}, {"gamma", 0.1}}, "epoch"),
         [](const json& a, torch::optim::Optimizer& o, Trainer&) -> std::shared_ptr<Scheduler> {
           if (a["step_size"].is_null()) throw std::invalid_argument("StepLR needs init_args.step_size");
           return std::make_shared<StepScheduler>(o, a["step_size"].get<int64_t>(), a["gamma"].get<double>());
         },
         {"torch.optim.lr_scheduler.StepLR"}});
  r.add({"OneCycleLR", "the 1cycle policy; max_lr defaults to the optimizer's lr, total_steps to the fit's length",
         stepping({{"max_lr", nullptr}, {"total_steps", nullptr}, {"pct_start", 0.3}, {"div_factor", 25.0},
                   {"final_div_factor", 1e4}},
                  "step"),
         [](const json& a, torch::optim::Optimizer& o, Trainer& t) -> std::shared_ptr<Scheduler> {
           double max_lr = a["max_lr"].is_null() ? o.param_groups()[0].options().get_lr() : a["max_lr"].get<double>();
           int64_t total = a["total_steps"].is_null() ? t.estimated_stepping_batches() : a["total_steps"].get<int64_t>();
           return std::make_shared<OneCycleScheduler>(o, max_lr, total, a["pct_start"].get<double>(),
                                                      a["div_factor"].get<double>(), a["final_div_factor"].get<double>());
         },
         {"torch.optim.lr_scheduler.OneCycleLR"}});
  r.add({"ReduceLROnPlateau", "multiply the lr by factor when the monitored metric stops improving",
         stepping({{"mode", "min"}, {"factor", 0.1}, {"patience", 10}, {"threshold", 1e-4}, {"cooldown", 0},
                   {"min_lr", 0.0}},
                  "epoch", "loss/validate"),
         [](const json& a, torch::optim::Optimizer& o, Trainer&) -> std::shared_ptr<Scheduler> {
           return std::make_shared<ReduceOnPlateauScheduler>(
               o, a["mode"].get<std::string>(), a["factor"].get<double>(), a["patience"].get<int64_t>(),
               a["threshold"].get<double>(), a["cooldown"].get<int64_t>(), a["min_lr"].get<double>());
         },
         {"torch.optim.lr_scheduler.ReduceLROnPlateau"}});
  r.add({"WarmupCosine", "linear warmup over warmup_fraction of the fit, then cosine decay to min_lr_ratio x lr",
         stepping({{"warmup_fraction", 0.05}, {"min_lr_ratio", 0.01}}, "step"),
         [](const json& a, torch::optim::Optimizer& o, Trainer& t) -> std::shared_ptr<Scheduler> {
           int64_t total = t.estimated_stepping_batches();
           return std::make_shared<WarmupCosineScheduler>(
               o, static_cast<int64_t>(a["warmup_fraction"].get<double>() * total), total,
               a["min_lr_ratio"].get<double>());
         },
         {"warmup_cosine"}});
  r.add({"ConstantLR", "the optimizer's lr throughout", stepping(json::object(), "step"),
         [](const json&, torch::optim::Optimizer& o, Trainer&) -> std::shared_ptr<Scheduler> {
           return std::make_shared<ConstantScheduler>(o);
         },
         {"constant"}});
}
}  // namespace

// A registry of `kind`, holding the built-in components `add_builtins` registers; one per
// registry type (each kind has its own type), made on first use.
template <typename Registry>
Registry& registry_of(const char* kind, void (*add_builtins)(Registry&)) {
  static Registry registry = [&] {
    Registry r(kind);
    if (add_builtins) add_builtins(r);
    return r;
  }();
  return registry;
}

ModuleRegistry& modules() { return registry_of<ModuleRegistry>("model", nullptr); }
DataModuleRegistry& data_modules() { return registry_of<DataModuleRegistry>("data module", nullptr); }
CallbackRegistry& callbacks() { return registry_of<CallbackRegistry>("callback", register_callbacks); }
LoggerRegistry& loggers() { return registry_of<LoggerRegistry>("logger", register_loggers); }
OptimizerRegistry& optimizers() { return registry_of<OptimizerRegistry>("optimizer", register_optimizers); }
SchedulerRegistry& schedulers() { return registry_of<SchedulerRegistry>("lr_scheduler", register_schedulers); }

std::shared_ptr<torch::optim::Optimizer> make_optimizer(const std::string& optimizer_class, const json& optimizer_args,
                                                       Module& module) {
  return optimizers().make_completed(
      optimizer_class, optimizers().complete(optimizer_class, optimizer_args, "optimizer.init_args"),
      module.parameter_groups());
}

OptimizerConfig make_optimizer_config(const std::string& optimizer_class, const json& optimizer_args,
                                      const std::string& scheduler_class, const json& scheduler_args, Module& module,
                                      Trainer& trainer) {
  OptimizerConfig config;
  config.optimizer = make_optimizer(optimizer_class, optimizer_args, module);
  config.name = optimizers().find(optimizer_class).name;
  if (scheduler_class.empty()) return config;
  json args = schedulers().complete(scheduler_class, scheduler_args, "lr_scheduler.init_args");
  config.interval = args["interval"].get<std::string>();
  if (config.interval != "step" && config.interval != "epoch")
    throw std::invalid_argument("lr_scheduler.init_args.interval: '" + config.interval +
                                "' is not allowed (allowed: step, epoch)");
  config.frequency = args["frequency"].get<int64_t>();
  if (config.frequency < 1) throw std::invalid_argument("lr_scheduler.init_args.frequency must be >= 1");
  if (!args["monitor"].is_null()) config.monitor = args["monitor"].get<std::string>();
  config.scheduler = schedulers().make_completed(scheduler_class, args, *config.optimizer, trainer);
  return config;
}

}  // namespace j2v::engine
