#include "data/table_data_module.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "base/available_cores.h"
#include "base/errors.h"
#include "data/readers/record_reader.h"
#include "data/record_batch.h"
#include "data/record_stream.h"

namespace j2v {

namespace {

// Serves batches of a table's rows, reshuffled every epoch from (seed, epoch).
class TableLoader : public engine::DataLoader {
 public:
  TableLoader(std::shared_ptr<const EncodedTable> table, std::vector<int64_t> rows, int64_t batch_size, bool shuffle,
              uint64_t seed)
      : table_(std::move(table)), rows_(std::move(rows)), order_(rows_), batch_size_(batch_size), shuffle_(shuffle),
        seed_(seed) {}

  int64_t num_batches() const override {
    return (static_cast<int64_t>(rows_.size()) + batch_size_ - 1) / batch_size_;
  }
  void start_epoch(int64_t epoch) override {
    order_ = rows_;
    if (shuffle_) {
      std::mt19937_64 rng(seed_ * 1000003ull + static_cast<uint64_t>(epoch));
      std::shuffle(order_.begin(), order_.end(), rng);
    }
    cursor_ = 0;
  }
  std::shared_ptr<engine::Batch> next() override {
    if (cursor_ >= order_.size()) return nullptr;
    size_t end = std::min(order_.size(), cursor_ + static_cast<size_t>(batch_size_));
    std::vector<int64_t> rows(order_.begin() + cursor_, order_.begin() + end);
    cursor_ = end;
    return std::make_shared<RecordBatch>(table_, std::move(rows));
  }

 private:
  std::shared_ptr<const EncodedTable> table_;
  std::vector<int64_t> rows_, order_;
  int64_t batch_size_;
  bool shuffle_;
  uint64_t seed_;
  size_t cursor_ = 0;
};

std::vector<int64_t> all_rows(int64_t n) {
  std::vector<int64_t> rows(n);
  std::iota(rows.begin(), rows.end(), 0);
  return rows;
}

std::shared_ptr<RecordBuffer> load(const RecordSource& source, const std::string& name) {
  if (source.is_query()) return read_all(open_sql_reader(source.sql, ReaderOptions{}), "data.sql");
  return source.is_file() ? RecordBuffer::from_file(source.path) : RecordBuffer::from_strings(source.records, "<" + name + ">");
}

}  // namespace

const Parameters<TableDataOptions>& TableDataOptions::parameters() {
  using O = TableDataOptions;
  static const auto p =
      Parameters<O>()
          .add("batch_size", &O::batch_size_,
               "records per batch; 0 = from the training rows: the power of two nearest below rows / 16, between 32 "
               "and 256, so that a small table still gets a dozen steps an epoch").at_least(0)
          .add("num_workers", &O::num_workers_, "threads encoding records into tensors; 0 = all cores").at_least(0)
          .add("shuffle", &O::shuffle_, "shuffle the training records every epoch")
          .add("seed", &O::seed_, "seed of the shuffling and of the train/validate split")
          .add("validate_fraction", &O::validate_fraction_,
               "share of train held out for validation when data.validate is null; 0 disables").between(0, 1);
  return p;
}

TableDataModule::TableDataModule(std::shared_ptr<RecordCodec> codec, TableSplits splits, TableDataOptions options)
    : codec_(std::move(codec)), splits_(std::move(splits)), options_(std::move(options)) {
  if (!codec_) throw std::invalid_argument("TableDataModule needs a codec (model.codec())");
  TableDataOptions::parameters().check(options_, "data");
  // Holding everything out would leave nothing to train on.
  if (options_.validate_fraction() >= 1) throw std::invalid_argument("data.validate_fraction must be < 1, got 1");
}

std::shared_ptr<const EncodedTable> TableDataModule::encode(const RecordSource& source, const std::string& name) {
  auto buffer = load(source, name);
  return std::make_shared<EncodedTable>(codec_->encode(buffer, nullptr, options_.num_workers()));
}

void TableDataModule::setup(engine::Stage stage) {
  if (stage == engine::Stage::kFit) {
    if (!splits_.train) throw std::invalid_argument("fit needs data.train");
    auto buffer = load(*splits_.train, "train");
    if (buffer->size() == 0) throw DataError("data.train: '" + buffer->source() + "' holds no records");
    train_rows_ = all_rows(static_cast<int64_t>(buffer->size()));
    validate_rows_.clear();
    if (!splits_.validate && options_.validate_fraction() > 0 && buffer->size() >= 2) {
      // A seeded shuffle, so the held-out rows are the same in every run with this seed.
      std::mt19937_64 rng(options_.seed() ^ 0x9e3779b97f4a7c15ull);
      std::vector<int64_t> order = train_rows_;
      std::shuffle(order.begin(), order.end(), rng);
      size_t n_val = std::max<size_t>(1, static_cast<size_t>(buffer->size() * options_.validate_fraction()));
      validate_rows_.assign(order.begin(), order.begin() + n_val);
      train_rows_.assign(order.begin() + n_val, order.end());
      std::sort(validate_rows_.begin(), validate_rows_.end());
      std::sort(train_rows_.begin(), train_rows_.end());
    }
    // Vocabularies and statistics come from the training rows only.
    codec_->fit(*buffer, &train_rows_, options_.num_workers());
    train_ = std::make_shared<EncodedTable>(codec_->encode(buffer, nullptr, options_.num_workers()));
    if (splits_.validate) {
      validate_ = encode(*splits_.validate, "validate");
      validate_rows_ = all_rows(validate_->rows);
    } else if (!validate_rows_.empty()) {
      validate_ = train_;
    }
  }
  if (!codec_->fitted()) return;  // the model reports that it needs training
  if (stage == engine::Stage::kValidate) {
    if (!splits_.validate) throw std::invalid_argument("validate needs data.validate");
    validate_ = encode(*splits_.validate, "validate");
    validate_rows_ = all_rows(validate_->rows);
  }
  if (stage == engine::Stage::kTest) {
    if (!splits_.test) throw std::invalid_argument("test needs data.test");
    test_ = encode(*splits_.test, "test");
  }
  if (stage == engine::Stage::kPredict) {
    if (!splits_.predict) throw std::invalid_argument("predict needs data.predict");
    if (!splits_.predict->is_file()) predict_ = encode(*splits_.predict, "predict");
  }
}

std::shared_ptr<engine::DataLoader> TableDataModule::loader(const std::shared_ptr<const EncodedTable>& table,
                                                            const std::vector<int64_t>& rows, bool shuffle) {
  return std::make_shared<TableLoader>(table, rows, batch_size(), shuffle, options_.seed());
}

std::shared_ptr<engine::DataLoader> TableDataModule::train_dataloader() {
  return train_ ? loader(train_, train_rows_, options_.shuffle()) : nullptr;
}
std::shared_ptr<engine::DataLoader> TableDataModule::val_dataloader() {
  return validate_ && !validate_rows_.empty() ? loader(validate_, validate_rows_, false) : nullptr;
}
std::shared_ptr<engine::DataLoader> TableDataModule::test_dataloader() {
  return test_ ? loader(test_, all_rows(test_->rows), false) : nullptr;
}
std::shared_ptr<engine::DataLoader> TableDataModule::predict_dataloader() {
  if (predict_) return loader(predict_, all_rows(predict_->rows), false);
  if (!splits_.predict || !splits_.predict->is_file() || !codec_->fitted()) return nullptr;
  // Workers read and encode batches ahead of the model, in input order.
  RecordStreamSpec spec;
  spec.files = {DiscoveredFile{splits_.predict->path, splits_.predict->path}};
  spec.ordered = true;
  spec.workers = options_.num_workers() > 0 ? options_.num_workers() : available_cores();
  spec.batch_size = batch_size();
  std::shared_ptr<const RecordEncoder> encoder(codec_, &codec_->encoder());
  return std::make_shared<RecordStream>(std::move(spec), std::move(encoder));
}

int64_t TableDataModule::batch_size() const {
  if (options_.batch_size() > 0) return options_.batch_size();
  // An epoch of two steps learns little: small tables get small batches.
  int64_t rows = static_cast<int64_t>(train_rows_.size());
  if (rows == 0) return kLargestAutoBatch;
  int64_t batch = kSmallestAutoBatch;
  while (batch * 2 <= rows / 16 && batch < kLargestAutoBatch) batch *= 2;
  return batch;
}

int64_t TableDataModule::rows(engine::Stage stage) const {
  switch (stage) {
    case engine::Stage::kFit: return static_cast<int64_t>(train_rows_.size());
    case engine::Stage::kValidate: return static_cast<int64_t>(validate_rows_.size());
    case engine::Stage::kTest: return test_ ? test_->rows : 0;
    case engine::Stage::kPredict: return predict_ ? predict_->rows : splits_.predict && splits_.predict->is_file() ? -1 : 0;
  }
  return 0;
}

}  // namespace j2v
