#pragma once
// Records read as they are needed from a directory of files, so data larger than memory
// trains in bounded memory: the files under `root` with the format's suffix are split by a
// regular expression per split, and each split is a RecordStream (see record_stream.h).
// Field statistics (vocabularies, means) come from one pass over the training files
// before the first epoch. Without a validate pattern, validate_fraction of the training
// records is held out by a hash of (file, record), the same records in every epoch and run.
#include <optional>
#include <string>

#include "data/record_stream.h"
#include "engine/data.h"
#include "base/options.h"
#include "base/parameters.h"
#include "data/record_codec.h"

namespace j2v {

struct StreamingDataOptions {
  // data.streaming's keys; batch_size, num_workers, seed and validate_fraction are shared with
  // the in-memory module and set in the data section.
  static const Parameters<StreamingDataOptions>& parameters();
  // Those keys, which both data modules take (the config gives them once, in its data section).
  static const std::vector<std::string>& common_keys();
  // The declaration less common_keys(): what data.streaming itself holds.
  static std::vector<ParameterInfo> own_parameters();

  J2V_ARG(std::string, root);
  J2V_ARG(std::string, suffix) = "jsonl";  // jsonl | ndjson | parquet | csv | json
  J2V_ARG(std::optional<std::string>, train) = std::nullopt;  // regex on the path under root
  J2V_ARG(std::optional<std::string>, validate) = std::nullopt;
  J2V_ARG(std::optional<std::string>, test) = std::nullopt;
  J2V_ARG(std::optional<std::string>, predict) = std::nullopt;
  J2V_ARG(std::string, sharding) = "chunk";  // file | chunk | record
  J2V_ARG(int64_t, chunk_size) = 1024;       // records per chunk (sharding: chunk)
  J2V_ARG(int64_t, shuffle_buffer) = 10000;  // records; <= 1 disables shuffling
  J2V_ARG(double, sample_rate) = 1.0;        // expected share (or copies, with replacement) of each record
  J2V_ARG(bool, replacement) = false;        // endless train stream; bound epochs with limit_train_batches
  J2V_ARG(double, validate_fraction) = 0.1;  // held out of train when there is no validate pattern
  J2V_ARG(int64_t, stats_records) = 0;       // records read to fit the fields; 0 = every training record
  J2V_ARG(int64_t, batch_size) = 256;
  J2V_ARG(int, num_workers) = 0;             // reading/encoding threads per rank; 0 = min(2, cores)
  J2V_ARG(int64_t, queue_batches) = 4;       // encoded batches waiting per worker
  J2V_ARG(uint64_t, seed) = 0;
  J2V_ARG(int, world_size) = 1;
  J2V_ARG(int, rank) = 0;
};

class StreamingDataModule : public engine::DataModule {
 public:
  // The codec is fitted on the training files (unless it already is) and encodes every stream.
  StreamingDataModule(std::shared_ptr<RecordCodec> codec, StreamingDataOptions options);

  void setup(engine::Stage stage) override;
  // A data-parallel run's rank and world size replace data.streaming.rank and world_size:
  // each rank reads every world_size-th record of the files (statistics still come from all).
  bool shard(int64_t rank, int64_t world_size) override;
  std::shared_ptr<engine::DataLoader> train_dataloader() override;
  std::shared_ptr<engine::DataLoader> val_dataloader() override;
  std::shared_ptr<engine::DataLoader> test_dataloader() override;
  std::shared_ptr<engine::DataLoader> predict_dataloader() override;
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

  // Records of this rank's training stream per epoch (before sampling; Parquet files with a
  // held-out share are estimated from their row counts); -1 before fit's setup.
  int64_t train_records() const { return train_records_; }

 private:
  std::vector<DiscoveredFile> files_of(const std::optional<std::string>& pattern, const std::string& key);
  std::shared_ptr<RecordStream> stream(std::vector<DiscoveredFile> files, bool ordered, Holdout holdout,
                                       int64_t estimated_records) const;
  void fit_fields(const std::vector<DiscoveredFile>& files, const Holdout& holdout);
  int64_t count_records(const std::vector<DiscoveredFile>& files, const Holdout& holdout) const;

  std::shared_ptr<RecordCodec> codec_;
  StreamingDataOptions options_;
  Sharding sharding_;
  FileFormat format_;
  std::vector<DiscoveredFile> all_files_;
  int64_t train_records_ = -1;
  std::shared_ptr<RecordStream> train_, validate_, test_, predict_;
  nlohmann::json pending_state_;
};

}  // namespace j2v
