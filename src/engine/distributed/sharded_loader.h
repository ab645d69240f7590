#pragma once
// One rank's share of a loader's batches: rank r of W takes batches r, r + W, r + 2W, ... of
// the epoch's order, which every rank draws alike (same seed, same epoch), so the shares are
// disjoint and W ranks of batch B step through the rows one rank of batch W x B would.
// Training takes equal shares (the last epoch-length mod W batches are left out, other ones
// each epoch when shuffled) so that every rank runs the same number of steps; prediction
// takes every batch exactly once across the ranks.
#include <memory>

#include "engine/data.h"

namespace j2v::engine {

class ShardedLoader : public DataLoader {
 public:
  ShardedLoader(std::shared_ptr<DataLoader> inner, int64_t rank, int64_t world_size, bool equal_shares);
  int64_t num_batches() const override;
  int64_t estimated_batches() const override;
  bool endless() const override { return inner_->endless(); }
  void start_epoch(int64_t epoch) override;
  std::shared_ptr<Batch> next() override;

 private:
  int64_t share(int64_t batches) const;
  std::shared_ptr<DataLoader> inner_;
  int64_t rank_, world_size_;
  bool equal_shares_;
  int64_t position_ = 0, taken_ = 0;
};

}  // namespace j2v::engine
