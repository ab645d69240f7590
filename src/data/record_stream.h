#pragma once
// One split of a StreamingDataModule as a DataLoader: worker threads read their shard of
// the split's files, sample and shuffle records in a bounded buffer, encode batches and hand
// them over through bounded queues; the loader takes batches from the workers in turn, so
// the stream is the same for a given seed whatever the threads' timing.
//
// Shards: the stream is split over world_size x workers shards. `file` gives shard s the
// files i with i % shards == s; `chunk` the runs of chunk_size consecutive records
// (counted across the files in order) with run % shards == s; `record` every shards-th
// record. Every record belongs to exactly one shard, so an epoch sees each record once
// across all ranks and workers. Ordered splits (validate, test, predict) use chunk sharding
// with one batch per chunk: taking batches in turn then restores the input order.
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data/bounded_queue.h"
#include "data/file_discovery.h"
#include "data/record_encoder.h"
#include "engine/data.h"

namespace j2v {

enum class Sharding { kFile, kChunk, kRecord };
Sharding sharding_from_name(const std::string& name);  // file | chunk | record, else DataError
uint64_t file_id_of(const std::string& key);           // a stable hash (FNV-1a) of a file's key

// Which records of the files a split keeps when validation is carved out of train by hash.
struct Holdout {
  double fraction = 0;    // 0: keep every record
  bool keep_held = false; // true: the held-out records (validate); false: the rest (train)
  uint64_t seed = 0;
  // file_id: file_id_of(the file's key under the root), so adding files keeps the split.
  bool keeps(uint64_t file_id, int64_t record_index) const;
};

struct RecordStreamSpec {
  std::vector<DiscoveredFile> files;
  bool ordered = false;  // validate/test/predict: input order, no sampling or shuffling
  Sharding sharding = Sharding::kChunk;
  int64_t chunk_size = 1024;
  int64_t shuffle_buffer = 10000;  // records, shared among the workers; <= 1: no shuffle
  double sample_rate = 1.0;
  bool replacement = false;  // endless: each pass draws Poisson(sample_rate) copies per record
  Holdout holdout;
  int world_size = 1, rank = 0, workers = 1;
  int64_t batch_size = 256;
  int64_t queue_batches = 4;  // per worker
  uint64_t seed = 0;
  int64_t estimated_records = -1;  // this rank's records per epoch, when known (for schedules)
};

class RecordStream : public engine::DataLoader {
 public:
  RecordStream(RecordStreamSpec spec, std::shared_ptr<const RecordEncoder> encoder);
  ~RecordStream() override;

  int64_t num_batches() const override { return -1; }  // unknown until the stream ends
  int64_t estimated_batches() const override;
  bool endless() const override { return spec_.replacement; }
  bool restores_position() const override { return true; }  // load_state_dict, then start_epoch skips
  void start_epoch(int64_t epoch) override;
  std::shared_ptr<engine::Batch> next() override;

  // Where the stream is: the epoch and the batches already taken from it. A stream restored
  // to a state and started at that epoch skips those batches, so it goes on where it was.
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  struct Item {
    std::shared_ptr<engine::Batch> batch;
    bool end = false;
    std::exception_ptr error;
  };
  void stop_workers();
  void run_worker(int worker, int64_t epoch);

  RecordStreamSpec spec_;
  // Per file: its row count when it is a local Parquet file (else -1). A worker then asks
  // DuckDB for its shard's rows only, instead of reading every row and skipping most.
  std::vector<int64_t> parquet_rows_;
  std::shared_ptr<const RecordEncoder> encoder_;
  std::vector<std::unique_ptr<BoundedQueue<Item>>> queues_;
  std::vector<std::thread> threads_;
  std::vector<bool> finished_;
  std::atomic<bool> stopping_{false};
  bool running_ = false;
  int turn_ = 0;
  int active_ = 0;
  int64_t epoch_ = -1;
  int64_t taken_ = 0;  // batches handed out this epoch
  int64_t resume_epoch_ = -1, resume_batches_ = 0;
};

}  // namespace j2v
