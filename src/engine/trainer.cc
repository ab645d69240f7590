#include "engine/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <set>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/available_cores.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/progress_bar.h"
#include "engine/checkpoint_io.h"
#include "engine/precision.h"
#include "engine/profiler.h"
#include "engine/stop_signal.h"
#include "engine/thread_replicas.h"

namespace j2v::engine {

namespace fs = std::filesystem;

namespace {
// The rows of the batch whose step is logging, per thread: replicas log concurrently.
thread_local int64_t tl_batch_size = 1;

// overfit_batches: the same few batches, in the same order, for training and validation.
class CachedLoader : public DataLoader {
 public:
  explicit CachedLoader(std::vector<std::shared_ptr<Batch>> batches) : batches_(std::move(batches)) {}
  int64_t num_batches() const override { return static_cast<int64_t>(batches_.size()); }
  void start_epoch(int64_t) override { cursor_ = 0; }
  std::shared_ptr<Batch> next() override { return cursor_ < batches_.size() ? batches_[cursor_++] : nullptr; }

 private:
  std::vector<std::shared_ptr<Batch>> batches_;
  size_t cursor_ = 0;
};

// Archive names must be identifiers; callback state keys are free text.
std::string archive_key(const std::string& prefix, const std::string& key) {
  std::string out = prefix;
  for (char c : key) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

torch::Tensor rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_rng_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// trainer.deterministic for one run, leaving the process as it found it.
class DeterministicScope {
 public:
  explicit DeterministicScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    previous_ = at::globalContext().deterministicAlgorithms();
    at::globalContext().setDeterministicAlgorithms(true, false);
  }
  ~DeterministicScope() {
    if (enabled_) at::globalContext().setDeterministicAlgorithms(previous_, false);
  }

 private:
  bool enabled_;
  bool previous_ = false;
};

void check_loss(const torch::Tensor& loss, int64_t epoch, int64_t idx) {
  double value = loss.item<double>();
  if (!std::isfinite(value))
    throw std::runtime_error(fmt::format("loss is {} at epoch {}, batch {}: training diverged (lower optimizer.lr "
                                         "or set trainer.gradient_clip_val)",
                                         value, epoch, idx));
}
}  // namespace

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kFit: return "fit";
    case Stage::kValidate: return "validate";
    case Stage::kTest: return "test";
    case Stage::kPredict: return "predict";
  }
  return "?";
}

int64_t BatchLimit::apply(int64_t available) const {
  if (is_fraction) {
    if (available < 0) return value >= 1.0 ? -1 : 0;
    return static_cast<int64_t>(std::floor(available * std::clamp(value, 0.0, 1.0)));
  }
  int64_t n = static_cast<int64_t>(value);
  return available < 0 ? n : std::min(n, available);
}

// A fraction of a stream is a fraction of its estimate; without one, only 1.0 (all) or a count
// can be honoured.
static int64_t batches_to_run(const BatchLimit& limit, const DataLoader& loader, const char* key) {
  int64_t available = loader.num_batches();
  if (available < 0 && limit.is_fraction && limit.value < 1.0) {
    available = loader.estimated_batches();
    if (available < 0)
      throw std::invalid_argument(fmt::format("trainer.{} is a fraction ({}), but the stream's length is unknown: "
                                              "give a number of batches instead",
                                              key, limit.value));
  }
  return limit.apply(available);
}


// ---- Module's trainer-facing members -------------------------------------------------
void Module::log(const std::string& name, double value, LogOptions options) {
  if (trainer_) trainer_->record_log(name, value, options);
}
void Module::log(const std::string& name, const torch::Tensor& value, LogOptions options) {
  log(name, value.detach().to(torch::kCPU).item<double>(), options);
}
void Module::log_dict(const std::map<std::string, double>& values, LogOptions options) {
  for (const auto& [k, v] : values) log(k, v, options);
}
void Module::manual_backward(const torch::Tensor& loss) {
  on_before_backward(loss);
  loss.backward();
  on_after_backward();
}
std::vector<torch::optim::Optimizer*> Module::optimizers() const {
  std::vector<torch::optim::Optimizer*> out;
  if (trainer_)
    for (auto& config : trainer_->optimizers()) out.push_back(config.optimizer.get());
  return out;
}
std::vector<Scheduler*> Module::lr_schedulers() const {
  std::vector<Scheduler*> out;
  if (trainer_)
    for (auto& config : trainer_->optimizers()) out.push_back(config.scheduler.get());
  return out;
}
void Module::optimizer_step(size_t i) {
  if (!trainer_ || i >= trainer_->optimizers().size())
    throw std::logic_error("optimizer_step: no optimizer " + std::to_string(i) + " (configure_optimizers returned " +
                           std::to_string(trainer_ ? trainer_->optimizers().size() : 0) + ")");
  auto& optimizer = *trainer_->optimizers()[i].optimizer;
  on_before_optimizer_step(optimizer);
  optimizer.step();
  trainer_->count_manual_step();
}
int64_t Module::current_epoch() const { return trainer_ ? trainer_->current_epoch() : 0; }
int64_t Module::global_step() const { return trainer_ ? trainer_->global_step() : 0; }

// ---- Trainer ------------------------------------------------------------------------
Trainer::~Trainer() = default;

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)) {
  if (options_.devices() < 1) throw std::invalid_argument("trainer.devices must be >= 1");
  if (options_.devices() > 1 && options_.accumulate_grad_batches() > 1)
    throw std::invalid_argument("trainer.accumulate_grad_batches > 1 is not supported with trainer.devices > 1");
  if (options_.gradient_clip_algorithm() != "norm" && options_.gradient_clip_algorithm() != "value")
    throw std::invalid_argument("trainer.gradient_clip_algorithm: '" + options_.gradient_clip_algorithm() +
                                "' is not allowed (allowed: norm, value)");
  if (options_.profiler() != "" && options_.profiler() != "simple")
    throw std::invalid_argument("trainer.profiler: '" + options_.profiler() + "' is not allowed (allowed: simple, or none)");
  if (options_.check_val_every_n_epoch() < 1) throw std::invalid_argument("trainer.check_val_every_n_epoch must be >= 1");
  if (options_.val_check_interval().value <= 0)
    throw std::invalid_argument("trainer.val_check_interval must be a fraction in (0, 1] or a number of batches >= 1");
  mixed_precision_ = is_mixed_precision(options_.precision());  // throws for an unknown precision
  profiler_ = std::make_unique<Profiler>(options_.profiler() == "simple");
  callbacks_ = options_.callbacks();
  loggers_ = options_.loggers();
  if (options_.fast_dev_run()) {
    options_.max_epochs(1).limit_train_batches(BatchLimit::count(1)).limit_val_batches(BatchLimit::count(1))
        .limit_test_batches(BatchLimit::count(1)).limit_predict_batches(BatchLimit::count(1));
  }
}

void Trainer::set_num_threads() const {
  int64_t n = options_.num_threads();
  if (n <= 0) n = available_cores();
  // With replicas the parallelism is across them; each runs single-threaded kernels.
  torch::set_num_threads(options_.devices() > 1 ? 1 : static_cast<int>(n));
}

void Trainer::setup_run(Module& module, bool for_fit) {
  module.trainer_ = this;
  set_num_threads();
  if (options_.seed()) torch::manual_seed(static_cast<uint64_t>(*options_.seed()));
  callback_metrics_.clear();
  progress_bar_metrics_.clear();
  if (!for_fit || options_.fast_dev_run()) return;
  // A fresh version directory per fit, like Lightning's lightning_logs/version_N.
  if (run_dir_.empty()) {
    fs::create_directories(options_.default_root_dir());
    for (int version = 0;; ++version) {
      fs::path dir = fs::path(options_.default_root_dir()) / fmt::format("version_{}", version);
      if (!fs::exists(dir)) {
        fs::create_directories(dir);
        run_dir_ = dir.string();
        break;
      }
    }
  }
  if (options_.logger() && loggers_.empty()) loggers_.push_back(std::make_shared<CSVLogger>(run_dir_));
  for (auto& logger : loggers_) logger->set_run_dir(run_dir_);
  bool has_checkpoint = false, has_bar = false;
  for (auto& cb : callbacks_) {
    if (dynamic_cast<ModelCheckpoint*>(cb.get())) has_checkpoint = true;
    if (dynamic_cast<ProgressBar*>(cb.get())) has_bar = true;
  }
  if (options_.enable_checkpointing() && !has_checkpoint)
    callbacks_.push_back(std::make_shared<ModelCheckpoint>(ModelCheckpointOptions()));
  if (options_.enable_progress_bar() && !has_bar) callbacks_.push_back(std::make_shared<ProgressBar>());
  // Two callbacks with one state key would share (and overwrite) each other's checkpoint state.
  std::set<std::string> keys;
  for (auto& cb : callbacks_)
    if (!keys.insert(cb->state_key()).second)
      throw std::invalid_argument("two callbacks have the state key '" + cb->state_key() +
                                  "' (the same callback twice, e.g. in trainer.callbacks and in its own config "
                                  "section?): keep one, or give them different monitors");
}

int64_t Trainer::estimated_stepping_batches() const {
  if (num_training_batches_ < 0) {
    // An epoch of unknown length: only max_steps bounds the run.
    if (options_.max_steps() > 0) return options_.max_steps();
    throw std::invalid_argument(
        "the number of training batches per epoch is unknown (a stream without an estimate), so the learning-rate "
        "schedule has no length: set trainer.max_steps, or trainer.limit_train_batches to a number of batches");
  }
  // Replicas take `devices` batches per optimizer step.
  int64_t batches_per_step = options_.accumulate_grad_batches() * std::max<int64_t>(options_.devices(), 1);
  int64_t per_epoch = (std::max<int64_t>(num_training_batches_, 1) + batches_per_step - 1) / batches_per_step;
  if (options_.max_epochs() < 0) {
    if (options_.max_steps() > 0) return options_.max_steps();
    throw std::invalid_argument("trainer.max_epochs is -1 (no limit), so the learning-rate schedule has no length: "
                                "set trainer.max_steps");
  }
  int64_t total = per_epoch * std::max<int64_t>(options_.max_epochs(), 1);
  if (options_.max_steps() > 0) total = std::min(total, options_.max_steps());
  return std::max<int64_t>(total, 1);
}

std::string Trainer::resolve_checkpoint(const std::string& ckpt_path) const {
  if (ckpt_path != "last" && ckpt_path != "best") {
    if (!fs::exists(ckpt_path)) throw CheckpointError("checkpoint '" + ckpt_path + "' does not exist");
    return ckpt_path;
  }
  // The newest run under default_root_dir that has the requested checkpoint.
  fs::path root(options_.default_root_dir());
  std::vector<std::pair<int, fs::path>> versions;
  if (fs::exists(root))
    for (const auto& entry : fs::directory_iterator(root)) {
      std::string name = entry.path().filename().string();
      if (entry.is_directory() && name.rfind("version_", 0) == 0) {
        try {
          versions.emplace_back(std::stoi(name.substr(8)), entry.path());
        } catch (...) {
        }
      }
    }
  std::sort(versions.rbegin(), versions.rend());
  for (const auto& [_, dir] : versions) {
    auto index = ModelCheckpoint::read_index(dir / "checkpoints");
    std::string candidate = index.value(ckpt_path == "best" ? "best_model_path" : "last_model_path", "");
    if (!candidate.empty() && fs::exists(candidate)) return candidate;
  }
  throw CheckpointError(fmt::format("--ckpt_path {}: no run under '{}' has a {} checkpoint (train one with "
                                    "`json2vec fit` first, or pass a file path)",
                                    ckpt_path, options_.default_root_dir(), ckpt_path));
}

void Trainer::save_checkpoint(const std::string& path, Module& module) {
  CheckpointWriter writer;
  nlohmann::json module_state = nlohmann::json::object();
  module.on_save_checkpoint(module_state);
  nlohmann::json callbacks = nlohmann::json::object();
  for (auto& cb : callbacks_) callbacks[cb->state_key()] = cb->state_dict();
  nlohmann::json schedulers = nlohmann::json::array();
  for (auto& opt : optimizers_) schedulers.push_back(opt.scheduler ? opt.scheduler->state_dict() : nlohmann::json());
  writer.meta = {{"epoch", current_epoch_},
                 {"global_step", global_step_},
                 {"module", module_state},
                 {"hparams", module.hparams()},
                 {"callbacks", callbacks},
                 {"schedulers", schedulers},
                 {"callback_metrics", callback_metrics_},
                 {"batch_in_epoch", batches_in_epoch_}};
  // A checkpoint inside an epoch (an interrupted fit) resumes that epoch's running means too.
  if (batches_in_epoch_ > 0) writer.meta["epoch_metrics"] = accumulators_json();
  if (!options_.config().is_null()) writer.meta["config"] = options_.config();
  if (data_) writer.meta["datamodule"] = data_->state_dict();
  writer.write_module = [&module](torch::serialize::OutputArchive& a) { module.save(a); };
  for (auto& opt : optimizers_)
    writer.write_optimizers.push_back([opt](torch::serialize::OutputArchive& a) { opt.optimizer->save(a); });
  // Dropout masks after a resume continue the interrupted run's random sequence.
  torch::Tensor epoch_start = batches_in_epoch_ > 0 ? epoch_start_rng_ : torch::Tensor();
  writer.write_extra.emplace_back("rng", [epoch_start](torch::serialize::OutputArchive& a) {
    a.write("cpu", rng_state());
    if (epoch_start.defined()) a.write("cpu_epoch_start", epoch_start);
  });
  for (auto& cb : callbacks_)
    writer.write_extra.emplace_back(archive_key("callback_", cb->state_key()),
                                    [cb](torch::serialize::OutputArchive& a) { cb->save_tensors(a); });
  auto timer = profiler_->scope("save_checkpoint");
  write_checkpoint_atomically(path, writer);
}

nlohmann::json Trainer::accumulators_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, acc] : epoch_accumulators_)
    out[name] = {{"sum", acc.sum}, {"weight", acc.weight}, {"extreme", acc.extreme}, {"reduce", acc.reduce},
                 {"prog_bar", acc.prog_bar}, {"logger", acc.logger}};
  return out;
}

void Trainer::load_accumulators(const nlohmann::json& state) {
  epoch_accumulators_.clear();
  for (const auto& [name, a] : state.items()) {
    Accumulator acc;
    acc.sum = a.value("sum", 0.0);
    acc.weight = a.value("weight", 0.0);
    acc.extreme = a.value("extreme", 0.0);
    acc.reduce = a.value("reduce", "mean");
    acc.prog_bar = a.value("prog_bar", false);
    acc.logger = a.value("logger", true);
    epoch_accumulators_[name] = acc;
  }
}

void Trainer::load_weights(const std::string& path, Module& module) { restore(path, module, false); }

void Trainer::restore(const std::string& path, Module& module, bool full) {
  CheckpointReader reader(path);
  torch::serialize::InputArchive module_archive;
  if (!reader.read_nested("module", module_archive))
    throw CheckpointError("checkpoint '" + path + "' has no module weights");
  try {
    module.load(module_archive);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw CheckpointError("checkpoint '" + path + "' does not fit this model: " + what.substr(0, what.find('\n')));
  }
  if (!full) return;
  const auto& meta = reader.meta();
  current_epoch_ = meta.value("epoch", int64_t{0});
  global_step_ = meta.value("global_step", int64_t{0});
  for (size_t i = 0; i < optimizers_.size(); ++i) {
    torch::serialize::InputArchive opt_archive;
    if (reader.read_nested("optimizer_" + std::to_string(i), opt_archive)) optimizers_[i].optimizer->load(opt_archive);
    if (optimizers_[i].scheduler && meta.contains("schedulers") && i < meta["schedulers"].size() &&
        !meta["schedulers"][i].is_null())
      optimizers_[i].scheduler->load_state_dict(meta["schedulers"][i]);
  }
  if (data_ && meta.contains("datamodule")) data_->load_state_dict(meta["datamodule"]);
  if (meta.contains("callbacks"))
    for (auto& cb : callbacks_)
      if (meta["callbacks"].contains(cb->state_key())) {
        cb->load_state_dict(meta["callbacks"][cb->state_key()]);
        torch::serialize::InputArchive tensors;
        if (reader.read_nested(archive_key("callback_", cb->state_key()), tensors)) cb->load_tensors(tensors);
      }
  resume_batch_ = meta.value("batch_in_epoch", int64_t{0});
  batches_in_epoch_ = resume_batch_;
  if (resume_batch_ > 0 && meta.contains("epoch_metrics")) load_accumulators(meta["epoch_metrics"]);
  torch::serialize::InputArchive rng;
  resume_rng_ = resume_epoch_rng_ = torch::Tensor();
  if (reader.read_nested("rng", rng)) {
    torch::Tensor state, epoch_start;
    if (rng.try_read("cpu", state)) set_rng_state(state);
    // Inside an epoch, the epoch is replayed from its start first (run_train_epoch).
    if (resume_batch_ > 0 && rng.try_read("cpu_epoch_start", epoch_start)) {
      resume_rng_ = state;
      resume_epoch_rng_ = epoch_start;
    }
  }
}

// Reads only the module's own state (schema, vocabularies) so the module can build itself
// before data is set up and weights are loaded.
static void preload_module_state(const std::string& path, Module& module) {
  CheckpointReader reader(path);
  module.on_load_checkpoint(reader.meta().value("module", nlohmann::json::object()));
}

void Trainer::record_log(const std::string& name, double value, const LogOptions& options) {
  std::lock_guard<std::mutex> lock(log_mutex_);
  bool on_step = options.on_step.value_or(in_training_step_);
  bool on_epoch = options.on_epoch.value_or(!in_training_step_);
  std::string step_name = (on_step && on_epoch) ? name + "_step" : name;
  std::string epoch_name = (on_step && on_epoch) ? name + "_epoch" : name;
  if (on_step) {
    if (options.logger) pending_step_metrics_[step_name] = value;
    if (options.prog_bar) progress_bar_metrics_[step_name] = value;
    callback_metrics_[step_name] = value;
  }
  if (on_epoch) {
    auto& acc = epoch_accumulators_[epoch_name];
    if (acc.weight == 0) acc.extreme = value;
    acc.reduce = options.reduce_fx;
    acc.prog_bar = options.prog_bar;
    acc.logger = options.logger;
    double w = static_cast<double>(tl_batch_size);
    if (options.reduce_fx == "sum") acc.sum += value;
    else if (options.reduce_fx == "max") acc.extreme = std::max(acc.extreme, value);
    else if (options.reduce_fx == "min") acc.extreme = std::min(acc.extreme, value);
    else acc.sum += value * w;
    acc.weight += w;
    if (options.prog_bar) progress_bar_metrics_[epoch_name] = acc.reduce == "mean" ? acc.sum / acc.weight : value;
  }
}

void Trainer::begin_epoch_metrics() { epoch_accumulators_.clear(); }

std::map<std::string, double> Trainer::end_epoch_metrics() {
  std::map<std::string, double> logged;
  for (auto& [name, acc] : epoch_accumulators_) {
    double v = acc.reduce == "sum" ? acc.sum : (acc.reduce == "max" || acc.reduce == "min") ? acc.extreme
                                                                                            : acc.sum / std::max(acc.weight, 1e-12);
    callback_metrics_[name] = v;
    if (acc.prog_bar) progress_bar_metrics_[name] = v;
    if (acc.logger) logged[name] = v;
  }
  epoch_accumulators_.clear();
  return logged;
}

void Trainer::send_to_loggers(const std::map<std::string, double>& metrics) {
  if (metrics.empty() || options_.fast_dev_run()) return;
  auto timer = profiler_->scope("log_metrics");
  auto with_epoch = metrics;
  with_epoch["epoch"] = static_cast<double>(current_epoch_);
  for (auto& logger : loggers_) logger->log_metrics(with_epoch, global_step_);
}

void Trainer::clip_gradients(Module& module) {
  if (options_.gradient_clip_val() <= 0) return;
  auto timer = profiler_->scope("clip_gradients");
  if (options_.gradient_clip_algorithm() == "value")
    torch::nn::utils::clip_grad_value_(module.parameters(), options_.gradient_clip_val());
  else
    torch::nn::utils::clip_grad_norm_(module.parameters(), options_.gradient_clip_val());
}

void Trainer::step_schedulers(const std::string& interval, int64_t counter) {
  for (auto& opt : optimizers_) {
    if (!opt.scheduler || opt.interval != interval || counter % std::max<int64_t>(opt.frequency, 1) != 0) continue;
    if (opt.monitor.empty()) {
      opt.scheduler->step();
      continue;
    }
    if (metric_is_stale(opt.monitor)) continue;  // no validation this epoch: nothing new to react to
    auto it = callback_metrics_.find(opt.monitor);
    // Not logged yet because nothing has validated yet (check_val_every_n_epoch): wait for it.
    bool validated = interval == "epoch" ? validated_this_epoch_ : validations_run_ > 0;
    if (it == callback_metrics_.end() && !validated) continue;
    if (it == callback_metrics_.end())
      throw std::invalid_argument(fmt::format(
          "the learning-rate scheduler monitors '{}', which was not logged (logged: {}): set its monitor to a logged "
          "metric, or validate before it steps",
          opt.monitor, [&] {
            std::vector<std::string> names;
            for (const auto& [k, _] : callback_metrics_) names.push_back(k);
            return fmt::format("{}", fmt::join(names, ", "));
          }()));
    opt.scheduler->step(it->second);
  }
}

// Lightning's order: on_before_optimizer_step sees the raw gradients, then they are clipped
// and the optimizers step. Gradients are zeroed where an accumulation window starts.
void Trainer::optimizer_step(Module& module) {
  for (auto& opt : optimizers_) module.on_before_optimizer_step(*opt.optimizer);
  clip_gradients(module);
  {
    auto timer = profiler_->scope("optimizer_step");
    for (auto& opt : optimizers_) opt.optimizer->step();
  }
  ++global_step_;
  step_schedulers("step", global_step_);
}

void Trainer::zero_grad(Module& module) {
  auto timer = profiler_->scope("zero_grad");
  for (auto& opt : optimizers_) {
    module.on_before_zero_grad(*opt.optimizer);
    opt.optimizer->zero_grad();
  }
}

bool Trainer::validates_after_epoch(int64_t epoch) const {
  return (epoch + 1) % options_.check_val_every_n_epoch() == 0;
}

bool Trainer::stop_requested() {
  if (!interrupted_by_) interrupted_by_ = StopSignalScope::received();
  return interrupted_by_ != 0;
}

void Trainer::write_interrupt_checkpoint(Module& module) {
  if (options_.fast_dev_run() || run_dir_.empty()) return;
  for (auto& cb : callbacks_)
    if (auto* checkpoint = dynamic_cast<ModelCheckpoint*>(cb.get())) {
      interrupt_checkpoint_ = checkpoint->save_last(*this, module);
      break;
    }
  if (interrupt_checkpoint_.empty()) {
    interrupt_checkpoint_ = (fs::path(run_dir_) / "interrupted.ckpt").string();
    save_checkpoint(interrupt_checkpoint_, module);
  }
  std::cerr << fmt::format("{} received: stopped after step {} (epoch {}, batch {}); resumable checkpoint {}\n",
                           signal_name(interrupted_by_), global_step_, current_epoch_, batches_in_epoch_,
                           interrupt_checkpoint_);
}

bool Trainer::run_train_batch(Module& module, Batch& batch, int64_t idx, int64_t accumulate, bool& pending_grads,
                              torch::Tensor& loss) {
  {
    PrecisionScope precision(mixed_precision_);
    auto timer = profiler_->scope("training_step");
    in_training_step_ = true;
    loss = module.training_step(batch, idx);
    in_training_step_ = false;
  }
  if (!module.automatic_optimization) {
    if (!loss.defined()) loss = torch::zeros({});
    return true;
  }
  if (!loss.defined()) return false;  // the module skipped this batch
  check_loss(loss, current_epoch_, idx);
  if (!pending_grads) zero_grad(module);
  module.on_before_backward(loss);
  {
    auto timer = profiler_->scope("backward");
    (accumulate > 1 ? loss / static_cast<double>(accumulate) : loss).backward();
  }
  module.on_after_backward();
  pending_grads = true;
  if ((idx + 1) % accumulate == 0) {
    optimizer_step(module);
    pending_grads = false;
  }
  return true;
}

// Batches between validations inside an epoch of `limit` batches; 0: only at the epoch's end.
static int64_t validation_stride(const BatchLimit& interval, int64_t limit) {
  if (!interval.is_fraction) return static_cast<int64_t>(interval.value);
  if (interval.value >= 1.0 || limit <= 0) return 0;
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(limit * interval.value)));
}

void Trainer::run_train_epoch(Module& module, DataLoader& loader, DataLoader* val_loader) {
  module.train();
  int64_t first = resume_batch_;
  resume_batch_ = 0;
  // A loader may shuffle with the global generator: replaying an epoch needs the generator as
  // it was when the epoch began; the generator as it was when the run stopped comes after.
  if (first > 0 && resume_epoch_rng_.defined()) set_rng_state(resume_epoch_rng_);
  epoch_start_rng_ = rng_state();
  {
    auto timer = profiler_->scope("train_dataloader_start_epoch");
    loader.start_epoch(current_epoch_);
  }
  if (first == 0) begin_epoch_metrics();  // a resumed epoch keeps its restored running means
  module.on_train_epoch_start();
  for (auto& cb : callbacks_) cb->on_train_epoch_start(*this, module);
  int64_t limit = batches_to_run(options_.limit_train_batches(), loader, "limit_train_batches");
  num_loop_batches_ = limit;
  // A data module that saves its position skips what was trained on itself; otherwise the
  // epoch's order is replayed and the trained batches dropped.
  if (first > 0 && !loader.restores_position())
    for (int64_t i = 0; i < first && loader.next(); ++i) {
    }
  if (first > 0 && resume_rng_.defined()) set_rng_state(resume_rng_);
  resume_rng_ = resume_epoch_rng_ = torch::Tensor();
  bool validate_this_epoch = val_loader && validates_after_epoch(current_epoch_);
  int64_t stride = validation_stride(options_.val_check_interval(), limit);
  // Replicas take several batches per step: validate whenever a stride boundary was crossed.
  int64_t validated_block = stride > 0 ? first / stride : 0;
  auto maybe_validate_inside_epoch = [&](int64_t done) {
    if (!validate_this_epoch || stride <= 0 || done / stride == validated_block || (limit >= 0 && done >= limit))
      return;
    validated_block = done / stride;
    run_validation(module, *val_loader);
    module.train();
  };
  auto log_step_metrics = [&] {
    if (!pending_step_metrics_.empty() && global_step_ % std::max<int64_t>(options_.log_every_n_steps(), 1) == 0)
      send_to_loggers(pending_step_metrics_);
    pending_step_metrics_.clear();
  };
  batches_in_epoch_ = first;
  if (replicas_) {
    int64_t idx = first;
    while (!should_stop && run_replica_step(module, loader, idx, limit)) {
      batches_in_epoch_ = idx;
      log_step_metrics();
      if (options_.max_steps() > 0 && global_step_ >= options_.max_steps()) should_stop = true;
      maybe_validate_inside_epoch(idx);
      if (stop_requested()) break;
    }
  } else {
    int64_t accumulate = std::max<int64_t>(options_.accumulate_grad_batches(), 1);
    bool pending_grads = false;
    for (int64_t idx = first; limit < 0 || idx < limit; ++idx) {
      std::shared_ptr<Batch> batch;
      {
        auto timer = profiler_->scope("train_dataloader_next");
        batch = loader.next();
      }
      if (!batch) break;
      batch_index_ = idx;
      tl_batch_size = batch->size();
      module.on_train_batch_start(*batch, idx);
      for (auto& cb : callbacks_) cb->on_train_batch_start(*this, module, *batch, idx);
      torch::Tensor loss;
      bool ran = run_train_batch(module, *batch, idx, accumulate, pending_grads, loss);
      batches_in_epoch_ = idx + 1;
      if (ran) {
        module.on_train_batch_end(loss, *batch, idx);
        auto timer = profiler_->scope("callbacks.on_train_batch_end");
        for (auto& cb : callbacks_) cb->on_train_batch_end(*this, module, loss, *batch, idx);
      }
      log_step_metrics();
      if (options_.max_steps() > 0 && global_step_ >= options_.max_steps()) {
        should_stop = true;
        break;
      }
      if (should_stop) break;
      if (!pending_grads) {
        maybe_validate_inside_epoch(idx + 1);
        if (stop_requested()) break;
      }
    }
    if (pending_grads && !interrupted_by_) optimizer_step(module);  // the epoch's last, partial accumulation
  }
  // The epoch ends (on_train_epoch_end, its means logged) in fit, after its validation, as in Lightning.
}

void Trainer::run_validation(Module& module, DataLoader& loader) {
  auto timer = profiler_->scope("run_validation");
  // Validation keeps its own running means: the training epoch's must survive a check inside it.
  auto training_means = std::move(epoch_accumulators_);
  epoch_accumulators_.clear();
  for (auto& cb : callbacks_) cb->on_validation_start(*this, module);
  module.on_validation_start();
  auto logged = run_eval_loop(module, loader, Stage::kValidate);
  ++validations_run_;
  last_validation_metrics_.clear();
  for (const auto& [name, _] : logged) last_validation_metrics_.insert(name);
  module.on_validation_end();
  for (auto& cb : callbacks_) cb->on_validation_end(*this, module);
  epoch_accumulators_ = std::move(training_means);
}

bool Trainer::run_replica_step(Module& module, DataLoader& loader, int64_t& idx, int64_t limit) {
  std::vector<std::shared_ptr<Batch>> batches;
  while (static_cast<int64_t>(batches.size()) < replicas_->size() &&
         (limit < 0 || idx + static_cast<int64_t>(batches.size()) < limit)) {
    auto batch = loader.next();
    if (!batch) break;
    batches.push_back(std::move(batch));
  }
  if (batches.empty()) return false;
  for (size_t r = 0; r < batches.size(); ++r) {
    int64_t batch_idx = idx + static_cast<int64_t>(r);
    module.on_train_batch_start(*batches[r], batch_idx);
    for (auto& cb : callbacks_) cb->on_train_batch_start(*this, module, *batches[r], batch_idx);
  }
  zero_grad(module);
  std::vector<torch::Tensor> losses(batches.size());
  batch_index_ = idx;
  in_training_step_ = true;
  replicas_->run([&](Module& replica, int64_t r) {
    if (r >= static_cast<int64_t>(batches.size())) return;
    tl_batch_size = batches[r]->size();
    torch::Tensor loss;
    {
      PrecisionScope precision(mixed_precision_);
      loss = replica.training_step(*batches[r], idx + r);
    }
    if (!loss.defined()) return;
    check_loss(loss, current_epoch_, idx + r);
    replica.on_before_backward(loss);
    loss.backward();
    replica.on_after_backward();
    losses[r] = loss.detach();
  });
  in_training_step_ = false;
  replicas_->reduce_gradients(static_cast<int64_t>(batches.size()));
  optimizer_step(module);
  replicas_->sync_weights();
  for (size_t r = 0; r < batches.size(); ++r)
    if (losses[r].defined())
      for (auto& cb : callbacks_) cb->on_train_batch_end(*this, module, losses[r], *batches[r], idx + static_cast<int64_t>(r));
  idx += static_cast<int64_t>(batches.size());
  return true;
}

std::map<std::string, double> Trainer::run_eval_loop(Module& module, DataLoader& loader, Stage stage) {
  torch::NoGradGuard no_grad;
  module.eval();
  auto saved_stage = stage_;
  stage_ = stage;
  loader.start_epoch(0);
  begin_epoch_metrics();
  if (stage == Stage::kValidate) module.on_validation_epoch_start();
  else module.on_test_epoch_start();
  const BatchLimit& limit_opt = stage == Stage::kValidate ? options_.limit_val_batches() : options_.limit_test_batches();
  int64_t limit = batches_to_run(limit_opt, loader, stage == Stage::kValidate ? "limit_val_batches" : "limit_test_batches");
  num_loop_batches_ = limit;
  for (int64_t idx = 0; limit < 0 || idx < limit; ++idx) {
    auto batch = loader.next();
    if (!batch) break;
    batch_index_ = idx;
    tl_batch_size = batch->size();
    PrecisionScope precision(mixed_precision_);
    if (stage == Stage::kValidate) {
      {
        auto timer = profiler_->scope("validation_step");
        module.validation_step(*batch, idx);
      }
      for (auto& cb : callbacks_) cb->on_validation_batch_end(*this, module, *batch, idx);
    } else {
      module.test_step(*batch, idx);
    }
  }
  tl_batch_size = 1;
  if (stage == Stage::kValidate) module.on_validation_epoch_end();
  else module.on_test_epoch_end();
  auto metrics = end_epoch_metrics();
  send_to_loggers(metrics);
  stage_ = saved_stage;
  module.train();
  return metrics;
}

void Trainer::fit(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path) {
  should_stop = false;
  stage_ = Stage::kFit;
  current_epoch_ = 0;
  global_step_ = 0;
  resume_batch_ = 0;
  batches_in_epoch_ = 0;
  interrupted_by_ = 0;
  validations_run_ = 0;
  validated_this_epoch_ = false;
  last_validation_metrics_.clear();
  ending_unvalidated_epoch_ = false;
  interrupt_checkpoint_.clear();
  auto fit_start = std::chrono::steady_clock::now();
  std::string resume_path;
  if (ckpt_path) {
    resume_path = resolve_checkpoint(*ckpt_path);
    preload_module_state(resume_path, module);
  }
  setup_run(module, true);
  // Checkpoints written during this fit carry the data module's position (a stream's).
  struct DataScope {
    DataModule*& slot;
    ~DataScope() { slot = nullptr; }
  } data_scope{data_};
  data_ = &data;
  data.prepare_data();
  data.setup(Stage::kFit);
  module.setup(Stage::kFit);
  auto train_loader = data.train_dataloader();
  if (!train_loader) throw std::invalid_argument("fit needs training data: the data module has no train split");
  if (train_loader->endless() && options_.limit_train_batches().is_fraction && options_.max_steps() <= 0)
    throw std::invalid_argument(
        "the training stream never ends (sampling with replacement): set trainer.limit_train_batches to a number of "
        "batches per epoch (an integer), or trainer.max_steps");
  auto val_loader = data.val_dataloader();
  if (options_.overfit_batches().value > 0) {
    int64_t n = batches_to_run(options_.overfit_batches(), *train_loader, "overfit_batches");
    if (n < 0)
      throw std::invalid_argument("trainer.overfit_batches is a fraction of a stream of unknown length: give a number "
                                  "of batches instead");
    std::vector<std::shared_ptr<Batch>> batches;
    train_loader->start_epoch(0);
    while (static_cast<int64_t>(batches.size()) < n)
      if (auto batch = train_loader->next()) batches.push_back(std::move(batch));
      else break;
    // Each loop reads the same batches through its own cursor: a validation inside the epoch
    // must not use up the training loop's.
    train_loader = std::make_shared<CachedLoader>(batches);
    val_loader = std::make_shared<CachedLoader>(std::move(batches));
  }
  // A stream does not know its length: schedules use its estimate (a count limit wins).
  int64_t known = train_loader->num_batches();
  num_training_batches_ = options_.limit_train_batches().apply(known >= 0 ? known : train_loader->estimated_batches());
  if (!module.automatic_optimization && options_.devices() > 1)
    throw std::invalid_argument("manual optimization (automatic_optimization = false) steps the optimizers from the "
                                "module itself: it cannot run on thread replicas (trainer.devices must be 1)");
  optimizers_ = optimizer_factory_ ? optimizer_factory_(module) : module.configure_optimizers();
  if (!resume_path.empty()) restore(resume_path, module, true);
  replicas_.reset();
  if (options_.devices() > 1) replicas_ = std::make_unique<ThreadReplicas>(module, options_.devices(), this);
  for (auto& logger : loggers_) logger->log_hyperparams(module.hparams());
  StopSignalScope signals(options_.handle_signals() && !options_.fast_dev_run());
  DeterministicScope deterministic(options_.deterministic());
  try {
    module.on_fit_start();
    for (auto& cb : callbacks_) cb->on_fit_start(*this, module);
    module.on_train_start();
    while ((options_.max_epochs() < 0 || current_epoch_ < options_.max_epochs()) && !should_stop) {
      run_train_epoch(module, *train_loader, val_loader.get());
      if (interrupted_by_) break;
      bool validate = val_loader && validates_after_epoch(current_epoch_) &&
                      batches_to_run(options_.limit_val_batches(), *val_loader, "limit_val_batches") != 0;
      // An epoch without validation must not act on the last validation's values again.
      validated_this_epoch_ = validate;
      ending_unvalidated_epoch_ = !validate;
      if (validate) run_validation(module, *val_loader);
      module.on_train_epoch_end();
      send_to_loggers(end_epoch_metrics());
      ++current_epoch_;  // the checkpoint written below resumes at the next epoch
      batches_in_epoch_ = 0;
      step_schedulers("epoch", current_epoch_);
      {
        auto timer = profiler_->scope("callbacks.on_train_epoch_end");
        for (auto& cb : callbacks_) cb->on_train_epoch_end(*this, module);
      }
      for (auto& logger : loggers_) logger->save();
      ending_unvalidated_epoch_ = false;
      if (stop_requested()) {
        bool more_to_do = !should_stop && (options_.max_epochs() < 0 || current_epoch_ < options_.max_epochs());
        if (more_to_do) break;  // the epoch's own checkpoint is the resumable one
        interrupted_by_ = 0;    // the run was finishing anyway: it ends as a complete run
      }
    }
    if (interrupted_by_) {
      write_interrupt_checkpoint(module);
    } else {
      module.on_train_end();
      module.on_fit_end();
      for (auto& cb : callbacks_) cb->on_fit_end(*this, module);
    }
    for (auto& logger : loggers_) logger->finalize();
  } catch (const std::exception& e) {
    for (auto& cb : callbacks_) cb->on_exception(*this, module, e);
    for (auto& logger : loggers_) logger->finalize();
    throw;
  }
  replicas_.reset();
  module.teardown(Stage::kFit);
  if (profiler_->enabled()) {
    std::string report =
        profiler_->report(std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start).count());
    std::cerr << "fit profile (wall time per action):\n" << report;
    if (!run_dir_.empty()) std::ofstream(fs::path(run_dir_) / "fit-profiler.txt") << report;
  }
}

std::map<std::string, double> Trainer::validate(Module& module, DataModule& data,
                                                const std::optional<std::string>& ckpt_path) {
  return evaluate(module, data, ckpt_path, Stage::kValidate);
}

std::map<std::string, double> Trainer::test(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path) {
  return evaluate(module, data, ckpt_path, Stage::kTest);
}

std::map<std::string, double> Trainer::evaluate(Module& module, DataModule& data,
                                                const std::optional<std::string>& ckpt_path, Stage stage) {
  std::string path = ckpt_path ? resolve_checkpoint(*ckpt_path) : "";
  if (!path.empty()) preload_module_state(path, module);
  setup_run(module, false);
  DeterministicScope deterministic(options_.deterministic());
  data.prepare_data();
  data.setup(stage);
  module.setup(stage);
  if (!path.empty()) restore(path, module, false);
  auto loader = stage == Stage::kValidate ? data.val_dataloader() : data.test_dataloader();
  if (!loader)
    throw std::invalid_argument(fmt::format("{0} needs data: the data module has no {0} split", stage_name(stage)));
  auto metrics = run_eval_loop(module, *loader, stage);
  for (auto& cb : callbacks_) {
    if (stage == Stage::kValidate) cb->on_validation_end(*this, module);
    else cb->on_test_end(*this, module);
  }
  module.teardown(stage);
  return metrics;
}

nlohmann::json Trainer::predict(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path,
                                bool return_predictions) {
  std::string path = ckpt_path ? resolve_checkpoint(*ckpt_path) : "";
  if (!path.empty()) preload_module_state(path, module);
  setup_run(module, false);
  stage_ = Stage::kPredict;
  data.prepare_data();
  data.setup(Stage::kPredict);
  module.setup(Stage::kPredict);
  if (!path.empty()) restore(path, module, false);
  auto loader = data.predict_dataloader();
  if (!loader) throw std::invalid_argument("predict needs data: the data module has no predict split");
  torch::NoGradGuard no_grad;
  module.eval();
  nlohmann::json all = nlohmann::json::array();
  try {
    for (auto& cb : callbacks_) cb->on_predict_start(*this, module);
    module.on_predict_epoch_start();
    loader->start_epoch(0);
    int64_t limit = batches_to_run(options_.limit_predict_batches(), *loader, "limit_predict_batches");
    num_loop_batches_ = limit;
    for (int64_t idx = 0; limit < 0 || idx < limit; ++idx) {
      auto batch = loader->next();
      if (!batch) break;
      batch_index_ = idx;
      auto rows = module.predict_step(*batch, idx);
      for (auto& cb : callbacks_) cb->on_predict_batch_end(*this, module, rows, *batch, idx);
      if (return_predictions)
        for (auto& row : rows) all.push_back(std::move(row));
    }
    module.on_predict_epoch_end();
    for (auto& cb : callbacks_) cb->on_predict_end(*this, module);
  } catch (const std::exception& e) {
    for (auto& cb : callbacks_) cb->on_exception(*this, module, e);
    throw;
  }
  stage_ = Stage::kFit;
  module.teardown(Stage::kPredict);
  return all;
}

}  // namespace j2v::engine
