#include "engine/distributed/sharded_loader.h"

#include <stdexcept>

namespace j2v::engine {

ShardedLoader::ShardedLoader(std::shared_ptr<DataLoader> inner, int64_t rank, int64_t world_size, bool equal_shares)
    : inner_(std::move(inner)), rank_(rank), world_size_(world_size), equal_shares_(equal_shares) {
  if (!inner_) throw std::invalid_argument("ShardedLoader needs a loader");
  if (world_size_ < 1 || rank_ < 0 || rank_ >= world_size_) throw std::invalid_argument("rank outside the world");
}

int64_t ShardedLoader::share(int64_t batches) const {
  if (batches < 0) return batches;
  if (equal_shares_) return batches / world_size_;
  return batches > rank_ ? (batches - rank_ + world_size_ - 1) / world_size_ : 0;
}

int64_t ShardedLoader::num_batches() const { return share(inner_->num_batches()); }
int64_t ShardedLoader::estimated_batches() const { return share(inner_->estimated_batches()); }

void ShardedLoader::start_epoch(int64_t epoch) {
  inner_->start_epoch(epoch);
  position_ = 0;
  taken_ = 0;
}

std::shared_ptr<Batch> ShardedLoader::next() {
  int64_t limit = num_batches();
  if (equal_shares_ && limit >= 0 && taken_ >= limit) return nullptr;
  while (auto batch = inner_->next()) {
    if (position_++ % world_size_ != rank_) continue;
    ++taken_;
    return batch;
  }
  return nullptr;
}

}  // namespace j2v::engine
