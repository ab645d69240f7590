#pragma once
// Records that fit in memory (JSON Lines files or JSON strings), encoded once and served as
// shuffled batches. Without a validate split, validate_fraction of train is held out so
// early stopping and --ckpt_path best work out of the box.
#include <optional>
#include <string>
#include <vector>

#include "base/options.h"
#include "base/parameters.h"
#include "data/encoded_table.h"
#include "data/record_codec.h"
#include "engine/data.h"

namespace j2v {

// JSON records in memory, a file (JSON Lines, plain, .gz or .zst; Parquet; CSV; JSON), or
// a DuckDB query whose rows are the records.
struct RecordSource {
  std::vector<std::string> records;
  std::string path;
  std::string sql;
  RecordSource(std::vector<std::string> in_memory) : records(std::move(in_memory)) {}  // NOLINT
  static RecordSource file(std::string path) {
    RecordSource s{std::vector<std::string>{}};
    s.path = std::move(path);
    return s;
  }
  static RecordSource query(std::string sql) {
    RecordSource s{std::vector<std::string>{}};
    s.sql = std::move(sql);
    return s;
  }
  bool is_file() const { return !path.empty(); }
  bool is_query() const { return !sql.empty(); }
};

// The predict split of a file is read as it is predicted (in order, a batch at a time), so a
// file of any size predicts in bounded memory; the other splits are loaded and encoded once.
struct TableSplits {
  std::optional<RecordSource> train, validate, test, predict;
};

struct TableDataOptions {
  static const Parameters<TableDataOptions>& parameters();

  J2V_ARG(int64_t, batch_size) = 0;  // 0: from the training rows (TableDataModule::batch_size)
  J2V_ARG(int, num_workers) = 0;
  J2V_ARG(bool, shuffle) = true;
  J2V_ARG(uint64_t, seed) = 0;
  J2V_ARG(double, validate_fraction) = 0.1;
};

class TableDataModule : public engine::DataModule {
 public:
  // The codec is fitted on the training split (unless it already is) and encodes every split.
  TableDataModule(std::shared_ptr<RecordCodec> codec, TableSplits splits, TableDataOptions options = {});

  void setup(engine::Stage stage) override;
  std::shared_ptr<engine::DataLoader> train_dataloader() override;
  std::shared_ptr<engine::DataLoader> val_dataloader() override;
  std::shared_ptr<engine::DataLoader> test_dataloader() override;
  std::shared_ptr<engine::DataLoader> predict_dataloader() override;

  // Records of a split; -1 for a predict file, which is streamed.
  int64_t rows(engine::Stage stage) const;
  // data.batch_size, or when it is 0 the power of two nearest below training rows / 16,
  // between 32 and 256 (256 before the training rows are known).
  int64_t batch_size() const;
  static constexpr int64_t kSmallestAutoBatch = 32, kLargestAutoBatch = 256;

 private:
  std::shared_ptr<const EncodedTable> encode(const RecordSource& source, const std::string& name);
  std::shared_ptr<engine::DataLoader> loader(const std::shared_ptr<const EncodedTable>& table,
                                             const std::vector<int64_t>& rows, bool shuffle);
  std::shared_ptr<RecordCodec> codec_;
  TableSplits splits_;
  TableDataOptions options_;
  std::shared_ptr<const EncodedTable> train_, validate_, test_, predict_;
  std::vector<int64_t> train_rows_, validate_rows_;  // rows of train_ (or validate_) per split
};

}  // namespace j2v
