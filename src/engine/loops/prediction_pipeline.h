#pragma once
// Batch prediction as a pipeline of threads: one reads batches from the loader, one per
// module runs predict_step (the module itself, or a strategy's replicas), and the caller
// receives each batch's rows in batch order, to hand to callbacks such as the writer.
// Reading, the forward pass and writing overlap instead of taking turns, so a job uses the
// cores it is given even where each stage alone would leave one idle. Not installed.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"

namespace j2v::engine {

class Module;

class PredictionPipeline {
 public:
  struct Result {
    int64_t batch_idx;
    std::shared_ptr<Batch> batch;
    nlohmann::json rows;
  };
  // Starts the threads. `limit` batches at most (-1: until the loader ends). Each runner's
  // thread runs under inference mode, and under bf16 autocast when `bf16_mixed`, with
  // `intra_op_threads` kernel threads (0: the process's setting).
  PredictionPipeline(DataLoader& loader, std::vector<Module*> runners, int intra_op_threads, int64_t limit,
                     bool bf16_mixed);
  // Stops reading, waits for the threads; results not taken are dropped.
  ~PredictionPipeline();
  PredictionPipeline(const PredictionPipeline&) = delete;
  PredictionPipeline& operator=(const PredictionPipeline&) = delete;

  // The next batch's rows in batch order; nullopt once every batch was returned. Rethrows the
  // first error of the reader or a runner (a bad record, a failing predict_step).
  std::optional<Result> next();

 private:
  void read(DataLoader& loader, int64_t limit);
  void run(Module& module, int intra_op_threads, bool bf16_mixed);
  void fail(std::exception_ptr error);

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<int64_t, std::shared_ptr<Batch>>> queued_;  // read, not yet run (FIFO)
  size_t queue_head_ = 0;
  std::map<int64_t, Result> finished_;  // run, waiting for their turn
  int64_t in_flight_ = 0;               // read and not yet returned: bounds memory
  int64_t capacity_;
  int64_t batches_read_ = 0;
  bool reading_done_ = false;
  int64_t next_idx_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace j2v::engine
