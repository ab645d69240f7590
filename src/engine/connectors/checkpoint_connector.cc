// Checkpoints of a run: resolving last/best, writing complete resumable state, restoring it
// (Lightning's _CheckpointConnector), and the resumable checkpoint of an interrupted fit.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "base/json_read.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/checkpoint_io.h"
#include "engine/profiler.h"
#include "engine/stop_signal.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

namespace fs = std::filesystem;
using namespace detail;

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
  throw CheckpointError(fmt::format("--ckpt_path {}: no run under '{}' has a {} checkpoint (run fit first, "
                                    "or pass a file path)",
                                    ckpt_path, options_.default_root_dir(), ckpt_path));
}

void Trainer::save_checkpoint(const std::string& path, Module& module) {
  if (!is_global_zero()) return;  // every rank holds the same state; rank 0 writes it
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
                 {"batch_in_epoch", batches_in_epoch_},
                 {"world_size", world_size()}};
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
  // A resumed epoch continues each rank's share of the batches: that needs the same ranks.
  int64_t saved_world = read_integer(meta, "world_size", 1);
  if (saved_world != world_size())
    throw CheckpointError(fmt::format(
        "checkpoint '{}' was written by a run of {} process(es), this run has {}: resume with the same "
        "trainer.devices x trainer.num_nodes, or start a new fit from its weights",
        path, saved_world, world_size()));
  current_epoch_ = read_integer(meta, "epoch", 0);
  global_step_ = read_integer(meta, "global_step", 0);
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
  resume_batch_ = read_integer(meta, "batch_in_epoch", 0);
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
void Trainer::preload_module_state(const std::string& path, Module& module) {
  CheckpointReader reader(path);
  module.on_load_checkpoint(reader.meta().value("module", nlohmann::json::object()));
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

}  // namespace j2v::engine
