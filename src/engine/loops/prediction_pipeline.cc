#include "engine/loops/prediction_pipeline.h"

#include <omp.h>
#include <torch/torch.h>

#include "engine/module.h"
#include "engine/precision.h"

namespace j2v::engine {

PredictionPipeline::PredictionPipeline(DataLoader& loader, std::vector<Module*> runners, int intra_op_threads,
                                       int64_t limit, bool bf16_mixed)
    // Two batches per runner keeps every runner busy while the writer takes its turn; more
    // would only hold memory.
    : capacity_(2 * static_cast<int64_t>(runners.size()) + 1) {
  try {
    threads_.emplace_back([this, &loader, limit] { read(loader, limit); });
    for (Module* module : runners) threads_.emplace_back([this, module, intra_op_threads, bf16_mixed] { run(*module, intra_op_threads, bf16_mixed); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

PredictionPipeline::~PredictionPipeline() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
}

void PredictionPipeline::fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::move(error);
    stopping_ = true;
  }
  changed_.notify_all();
}

void PredictionPipeline::read(DataLoader& loader, int64_t limit) {
  try {
    for (int64_t idx = 0; limit < 0 || idx < limit; ++idx) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || in_flight_ < capacity_; });
        if (stopping_) return;
      }
      auto batch = loader.next();
      if (!batch) break;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queued_.emplace_back(idx, std::move(batch));
        ++in_flight_;
        ++batches_read_;
      }
      changed_.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reading_done_ = true;
  }
  changed_.notify_all();
}

void PredictionPipeline::run(Module& module, int intra_op_threads, bool bf16_mixed) {
  try {
    if (intra_op_threads > 0) {
      // This thread's own count: LibTorch first gives a new thread the process's setting.
      at::internal::lazy_init_num_threads();
      omp_set_num_threads(intra_op_threads);
    }
    // Thread-local, like the grad mode: each runner opens its own.
    c10::InferenceMode inference;
    PrecisionScope precision(bf16_mixed);
    while (true) {
      std::pair<int64_t, std::shared_ptr<Batch>> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || queue_head_ < queued_.size() || reading_done_; });
        if (stopping_) return;
        if (queue_head_ == queued_.size()) return;  // reading is done and nothing is left
        job = std::move(queued_[queue_head_++]);
        if (queue_head_ == queued_.size()) {
          queued_.clear();
          queue_head_ = 0;
        }
      }
      auto rows = module.predict_step(*job.second, job.first);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        finished_.emplace(job.first, Result{job.first, std::move(job.second), std::move(rows)});
      }
      changed_.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

std::optional<PredictionPipeline::Result> PredictionPipeline::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] {
    return error_ || finished_.count(next_idx_) || (reading_done_ && next_idx_ == batches_read_);
  });
  if (error_) std::rethrow_exception(error_);
  auto found = finished_.find(next_idx_);
  if (found == finished_.end()) return std::nullopt;
  Result result = std::move(found->second);
  finished_.erase(found);
  ++next_idx_;
  --in_flight_;
  lock.unlock();
  changed_.notify_all();
  return result;
}

}  // namespace j2v::engine
