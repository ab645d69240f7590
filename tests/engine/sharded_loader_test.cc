// How a data-parallel run deals an epoch's batches to its ranks.
#include <gtest/gtest.h>

#include <vector>

#include "engine/distributed/sharded_loader.h"

namespace j2v::engine {
namespace {

struct NumberedBatch : Batch {
  explicit NumberedBatch(int64_t n) : number(n) {}
  int64_t size() const override { return 1; }
  int64_t number;
};

// Batches 0..n-1, or a stream of unknown length when `known` is false.
class CountingLoader : public DataLoader {
 public:
  CountingLoader(int64_t n, bool known) : n_(n), known_(known) {}
  int64_t num_batches() const override { return known_ ? n_ : -1; }
  void start_epoch(int64_t) override { next_ = 0; }
  std::shared_ptr<Batch> next() override { return next_ < n_ ? std::make_shared<NumberedBatch>(next_++) : nullptr; }

 private:
  int64_t n_, next_ = 0;
  bool known_;
};

std::vector<int64_t> drain(DataLoader& loader) {
  loader.start_epoch(0);
  std::vector<int64_t> out;
  while (auto b = loader.next()) out.push_back(dynamic_cast<NumberedBatch&>(*b).number);
  return out;
}

TEST(ShardedLoader, TrainingSharesAreDisjointAndEqual) {
  std::vector<std::vector<int64_t>> shares;
  for (int64_t rank = 0; rank < 3; ++rank) {
    ShardedLoader loader(std::make_shared<CountingLoader>(11, true), rank, 3, /*equal_shares=*/true);
    EXPECT_EQ(loader.num_batches(), 3);
    shares.push_back(drain(loader));
  }
  EXPECT_EQ(shares[0], (std::vector<int64_t>{0, 3, 6}));
  EXPECT_EQ(shares[1], (std::vector<int64_t>{1, 4, 7}));
  EXPECT_EQ(shares[2], (std::vector<int64_t>{2, 5, 8}));  // 9 and 10 would leave rank 2 a step short
}

TEST(ShardedLoader, PredictionTakesEveryBatchOnce) {
  std::vector<int64_t> all;
  for (int64_t rank = 0; rank < 3; ++rank) {
    ShardedLoader loader(std::make_shared<CountingLoader>(11, true), rank, 3, /*equal_shares=*/false);
    auto share = drain(loader);
    EXPECT_EQ(static_cast<int64_t>(share.size()), loader.num_batches());
    all.insert(all.end(), share.begin(), share.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(11);
  for (int64_t i = 0; i < 11; ++i) expected[i] = i;
  EXPECT_EQ(all, expected);
}

TEST(ShardedLoader, StreamsOfUnknownLengthStayUnknown) {
  ShardedLoader loader(std::make_shared<CountingLoader>(7, false), 1, 2, /*equal_shares=*/true);
  EXPECT_EQ(loader.num_batches(), -1);
  EXPECT_EQ(drain(loader), (std::vector<int64_t>{1, 3, 5}));  // the Trainer makes the ranks agree on steps
  EXPECT_THROW(ShardedLoader(std::make_shared<CountingLoader>(7, true), 2, 2, true), std::invalid_argument);
}

}  // namespace
}  // namespace j2v::engine
