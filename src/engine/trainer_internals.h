#pragma once
// What the Trainer's parts (loops, connectors) share and nobody else needs. Not installed.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/data.h"
#include "engine/trainer.h"

namespace j2v::engine::detail {

// The rows of the batch whose step is logging, per thread: replicas log concurrently.
int64_t& logging_batch_size();

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
std::string archive_key(const std::string& prefix, const std::string& key);
torch::Tensor rng_state();
void set_rng_state(const torch::Tensor& state);

// trainer.deterministic for one run, leaving the process as it found it.
class DeterministicScope {
 public:
  explicit DeterministicScope(bool enabled);
  ~DeterministicScope();

 private:
  bool enabled_;
  bool previous_ = false;
};

// Throws naming the epoch and batch when a loss is not finite.
void check_loss(const torch::Tensor& loss, int64_t epoch, int64_t idx);

// A limit applied to a loader. A fraction of a stream is a fraction of its estimate; without
// one, only 1.0 (all) or a count can be honoured (throws naming trainer.<key>).
int64_t batches_to_run(const BatchLimit& limit, const DataLoader& loader, const char* key);

}  // namespace j2v::engine::detail
