#include "engine/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <set>

#include "base/available_cores.h"
#include "engine/profiler.h"
#include "engine/precision.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

namespace fs = std::filesystem;
using namespace detail;

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kFit: return "fit";
    case Stage::kValidate: return "validate";
    case Stage::kTest: return "test";
    case Stage::kPredict: return "predict";
  }
  return "?";
}

Trainer::~Trainer() = default;

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)) {
  TrainerOptions::parameters().check(options_, "trainer");
  if (options_.accelerator() == "gpu" && !torch::cuda::is_available())
    throw std::invalid_argument(
        "trainer.accelerator is gpu, but no CUDA device is available to this LibTorch (Debian's is CPU-only): set "
        "trainer.accelerator to cpu or auto");
  StrategySettings settings;
  settings.devices = options_.devices();
  settings.num_nodes = options_.num_nodes();
  settings.ddp_timeout_s = options_.ddp_timeout_s();
  strategy_ = make_strategy(options_.strategy(), settings);  // throws for bad devices
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

int Trainer::cores() const {
  int64_t n = options_.num_threads();
  return static_cast<int>(n > 0 ? n : available_cores());
}

void Trainer::set_num_threads() const { torch::set_num_threads(strategy_->intra_op_threads(cores())); }

void Trainer::apply_float32_matmul_precision() {
  const bool bf16 = set_float32_matmul_precision(options_.float32_matmul_precision());
  if (options_.float32_matmul_precision() == "medium" && !bf16 && !warned_matmul_precision_) {
    std::cerr << "warning: trainer.float32_matmul_precision is medium, but this CPU has no AVX-512 BF16 (or this "
                 "program keeps LibTorch's BLAS): matrix products stay float32\n";
    warned_matmul_precision_ = true;
  }
}

int64_t Trainer::global_rank() const { return strategy_->global_rank(); }
int64_t Trainer::world_size() const { return strategy_->world_size(); }

void Trainer::setup_run(Module& module, bool for_fit) {
  module.attach_trainer(this);
  strategy_->setup_environment(*this);
  set_num_threads();
  apply_float32_matmul_precision();
  if (options_.seed()) torch::manual_seed(static_cast<uint64_t>(*options_.seed()));
  callback_metrics_.clear();
  progress_bar_metrics_.clear();
  if (!for_fit || options_.fast_dev_run()) return;
  // A fresh version directory per fit, like Lightning's lightning_logs/version_N: rank 0's,
  // which the other ranks of a data-parallel run name too but never write to.
  if (run_dir_.empty() && is_global_zero()) {
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
  if (world_size() > 1) {
    run_dir_ = strategy_->all_gather(run_dir_, "sharing rank 0's run directory")[0];
    if (!is_global_zero()) loggers_.clear();  // loggers and the progress bar: rank 0 only
  }
  attach_default_callbacks();
}

int64_t Trainer::estimated_stepping_batches() const {
  if (num_training_batches_ < 0) {
    // An epoch of unknown length: only max_steps bounds the run.
    if (options_.max_steps() > 0) return options_.max_steps();
    throw std::invalid_argument(
        "the number of training batches per epoch is unknown (a stream without an estimate), so the learning-rate "
        "schedule has no length: set trainer.max_steps, or trainer.limit_train_batches to a number of batches");
  }
  // A strategy takes `devices` batches per micro-step.
  int64_t batches_per_step = options_.accumulate_grad_batches() * strategy_->devices();
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

std::map<std::string, double> Trainer::validate(Module& module, DataModule& data,
                                                const std::optional<std::string>& ckpt_path) {
  return evaluate(module, data, ckpt_path, Stage::kValidate);
}

std::map<std::string, double> Trainer::test(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path) {
  return evaluate(module, data, ckpt_path, Stage::kTest);
}

}  // namespace j2v::engine
