#include "engine/trainer_options.h"

#include <algorithm>
#include <cmath>

#include "engine/strategies/strategy.h"

namespace j2v::engine {

int64_t BatchLimit::apply(int64_t available) const {
  if (is_fraction) {
    if (available < 0) return value >= 1.0 ? -1 : 0;
    return static_cast<int64_t>(std::floor(available * std::clamp(value, 0.0, 1.0)));
  }
  int64_t n = static_cast<int64_t>(value);
  return available < 0 ? n : std::min(n, available);
}

const Parameters<TrainerOptions>& TrainerOptions::parameters() {
  using O = TrainerOptions;
  static const auto p =
      Parameters<O>()
          .add("max_epochs", &O::max_epochs_, "stop after this many epochs; -1 = no limit").at_least(-1)
          .add("max_steps", &O::max_steps_, "stop after this many optimizer steps; -1 = no limit").at_least(-1)
          .add("min_epochs", &O::min_epochs_,
               "train at least this many epochs: a stop asked for earlier (early stopping) waits until then")
          .at_least(0)
          .add("min_steps", &O::min_steps_,
               "train at least this many optimizer steps: a stop asked for earlier (early stopping) waits until then")
          .at_least(0)
          .add("limit_train_batches", &O::limit_train_batches_,
               "training batches per epoch: a float is a fraction of them, an int a count").at_least(0)
          .add("limit_val_batches", &O::limit_val_batches_,
               "validation batches per check: a float is a fraction of them, an int a count").at_least(0)
          .add("limit_test_batches", &O::limit_test_batches_, "test batches: a float is a fraction of them, an int a count")
          .at_least(0)
          .add("limit_predict_batches", &O::limit_predict_batches_,
               "predict batches: a float is a fraction of them, an int a count").at_least(0)
          .add("fast_dev_run", &O::fast_dev_run_, "smoke test: run a single batch of each stage, without checkpoints or logs")
          .add("accumulate_grad_batches", &O::accumulate_grad_batches_, "batches whose gradients are summed per optimizer step")
          .at_least(1)
          .add("gradient_clip_val", &O::gradient_clip_val_, "clip the gradient norm to this value; 0 disables").at_least(0)
          .add("seed", &O::seed_, "seed of weight initialization and dropout; null leaves the generator as it is")
          .add("num_threads", &O::num_threads_,
               "threads for tensor operations, or under strategy auto on one device the single-threaded replicas "
               "each batch is split across; 0 = all cores").at_least(0)
          .add("devices", &O::devices_,
               "data-parallel devices, each taking its own batch (DDP semantics: the effective batch is data.batch_size x "
               "devices); on CPU, model replicas on threads").between(1, 64)
          .add("strategy", &O::strategy_,
               "where training steps run: auto (one device: each batch split across a replica per core, gradients "
               "averaged; thread_replicas for more devices), single_device (the model itself, intra-op threads), "
               "thread_replicas (a model replica per CPU thread), or ddp (a process per device, PyTorch's c10d with "
               "Gloo; also under torchrun or srun, which set RANK, WORLD_SIZE and LOCAL_RANK)").one_of(strategy_names())
          .add("num_nodes", &O::num_nodes_,
               "machines of a ddp run; start the same command on each with NODE_RANK, MASTER_ADDR and MASTER_PORT set")
          .at_least(1)
          .add("ddp_timeout_s", &O::ddp_timeout_s_,
               "seconds a ddp rank waits for the others (rendezvous, each collective) before failing").at_least(1)
          .add("accelerator", &O::accelerator_,
               "cpu, gpu, or auto (cpu here: this build's LibTorch has no CUDA)").one_of({"auto", "cpu", "gpu"})
          .add("default_root_dir", &O::default_root_dir_, "directory for logs and checkpoints")
          .add("enable_progress_bar", &O::enable_progress_bar_, "show a progress bar")
          .add("enable_checkpointing", &O::enable_checkpointing_, "save checkpoints (see the checkpoint section)")
          .add("logger", &O::logger_, "a CSV log in the run directory when no loggers are given")
          .add("precision", &O::precision_,
               "32-true, or bf16-mixed: steps run under CPU autocast to bfloat16, weights stay float32")
          .one_of({"32-true", "bf16-mixed"})
          .add("float32_matmul_precision", &O::float32_matmul_precision_,
               "highest, or medium: float32 matrix products round their operands to bfloat16 and accumulate in "
               "float32 (about twice the GEMM rate where the CPU has AVX-512 BF16; highest elsewhere)")
          .one_of({"highest", "medium"})
          .add("gradient_clip_algorithm", &O::gradient_clip_algorithm_,
               "clip the gradients' global norm, or each gradient value, to gradient_clip_val").one_of({"norm", "value"})
          .add("overfit_batches", &O::overfit_batches_,
               "train and validate on the same first batches (an int count or a float fraction); 0 = off").at_least(0)
          .add("val_check_interval", &O::val_check_interval_,
               "validate within each epoch: a float is a fraction of the epoch, an int a number of batches").at_least(0)
          .add("check_val_every_n_epoch", &O::check_val_every_n_epoch_, "validate after every this many epochs").at_least(1)
          .add("deterministic", &O::deterministic_, "use deterministic algorithms only (an error where none exists)")
          .add("profiler", &O::profiler_,
               "simple: time each hook and step, printed and written to <run dir>/fit-profiler.txt; "
               "ops: LibTorch's operator profiler over the training epochs, self time per operator and shapes "
               "and GEMM multiply-adds per step, written to <run dir>/fit-ops.txt").one_of({"none", "simple", "ops"})
          .add("log_every_n_steps", &O::log_every_n_steps_, "log training metrics every this many optimizer steps").at_least(1)
          .add("handle_signals", &O::handle_signals_,
               "SIGINT / SIGTERM during fit finish the step, write a resumable checkpoint and return");
  return p;
}

}  // namespace j2v::engine
