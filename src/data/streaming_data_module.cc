#include "data/streaming_data_module.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/errors.h"
#include "base/available_cores.h"

namespace j2v {

const Parameters<StreamingDataOptions>& StreamingDataOptions::parameters() {
  using O = StreamingDataOptions;
  static const auto p =
      Parameters<O>()
          .add("root", &O::root_, "directory searched for files (required)")
          .add("suffix", &O::suffix_, "file suffix: jsonl | ndjson | parquet | csv | json")
          .add("train", &O::train_, "regex searched in each path under root: the training files")
          .add("validate", &O::validate_, "regex of the validation files; null holds validate_fraction of train out")
          .add("test", &O::test_, "regex of the test files")
          .add("predict", &O::predict_, "regex of the files to predict")
          .add("sharding", &O::sharding_, "how ranks and workers split the files").one_of({"file", "chunk", "record"})
          .add("chunk_size", &O::chunk_size_, "records per chunk (sharding: chunk)").at_least(1)
          .add("shuffle_buffer", &O::shuffle_buffer_, "records shuffled together; <= 1 disables shuffling")
          .add("sample_rate", &O::sample_rate_,
               "expected share of each record (copies, with replacement); in (0, 1] without replacement")
          .add("replacement", &O::replacement_, "an endless training stream; bound epochs with trainer.limit_train_batches")
          .add("validate_fraction", &O::validate_fraction_, "held out of train when there is no validate pattern").between(0, 1)
          .add("stats_records", &O::stats_records_, "records read to fit the fields; 0 = every training record").at_least(0)
          .add("batch_size", &O::batch_size_, "records per batch; 0 = 256 (a stream's length is not known ahead)")
          .at_least(0)
          .add("num_workers", &O::num_workers_, "reading and encoding threads per rank; 0 = min(2, cores)").at_least(0)
          .add("queue_batches", &O::queue_batches_, "encoded batches waiting per worker").at_least(1)
          .add("seed", &O::seed_, "seed of the shuffling and of the held-out share")
          .add("world_size", &O::world_size_, "ranks sharing the stream").at_least(1)
          .add("rank", &O::rank_, "this process's rank among them").at_least(0);
  return p;
}

const std::vector<std::string>& StreamingDataOptions::common_keys() {
  static const std::vector<std::string> keys = {"batch_size", "num_workers", "seed", "validate_fraction"};
  return keys;
}

std::vector<ParameterInfo> StreamingDataOptions::own_parameters() {
  const auto& common = common_keys();
  std::vector<ParameterInfo> own;
  for (const auto& p : parameters().info())
    if (std::find(common.begin(), common.end(), p.name) == common.end()) own.push_back(p);
  return own;
}

StreamingDataModule::StreamingDataModule(std::shared_ptr<RecordCodec> codec, StreamingDataOptions options)
    : codec_(std::move(codec)), options_(std::move(options)) {
  const auto& o = options_;
  if (!codec_) throw std::invalid_argument("StreamingDataModule needs a codec (model.codec())");
  if (o.root().empty()) throw std::invalid_argument("data.streaming.root is required");
  StreamingDataOptions::parameters().check(o, "data.streaming");
  sharding_ = sharding_from_name(o.sharding());
  try {
    format_ = format_from_name(o.suffix());
  } catch (const DataError& e) {
    throw std::invalid_argument(std::string("data.streaming.suffix: ") + e.what());
  }
  if (o.sample_rate() <= 0 || (!o.replacement() && o.sample_rate() > 1))
    throw std::invalid_argument("data.streaming.sample_rate must be in (0, 1] (any positive rate with replacement)");
  if (o.validate_fraction() >= 1) throw std::invalid_argument("data.validate_fraction must be < 1, got 1");
  if (o.rank() >= o.world_size())
    throw std::invalid_argument(fmt::format("data.streaming.rank must be < world_size ({}), got {}", o.world_size(), o.rank()));
}

std::vector<DiscoveredFile> StreamingDataModule::files_of(const std::optional<std::string>& pattern,
                                                          const std::string& key) {
  if (!pattern) throw std::invalid_argument("data.streaming." + key + " (a regular expression) is needed here");
  if (all_files_.empty()) all_files_ = list_files(options_.root());
  return select_files(all_files_, format_, *pattern, "data.streaming." + key);
}

std::shared_ptr<RecordStream> StreamingDataModule::stream(std::vector<DiscoveredFile> files, bool ordered,
                                                          Holdout holdout, int64_t estimated_records) const {
  const auto& o = options_;
  RecordStreamSpec spec;
  spec.files = std::move(files);
  spec.ordered = ordered;
  spec.sharding = sharding_;
  spec.chunk_size = o.chunk_size();
  spec.shuffle_buffer = o.shuffle_buffer();
  spec.sample_rate = o.sample_rate();
  spec.replacement = o.replacement();
  spec.holdout = holdout;
  spec.world_size = o.world_size();
  spec.rank = o.rank();
  spec.workers = o.num_workers() > 0 ? o.num_workers() : std::min(2, available_cores());
  spec.batch_size = o.batch_size() > 0 ? o.batch_size() : 256;
  spec.queue_batches = o.queue_batches();
  spec.seed = o.seed();
  spec.estimated_records = estimated_records;
  // The stream's workers keep the encoder alive through the codec that owns it.
  std::shared_ptr<const RecordEncoder> encoder(codec_, &codec_->encoder());
  return std::make_shared<RecordStream>(std::move(spec), std::move(encoder));
}

void StreamingDataModule::fit_fields(const std::vector<DiscoveredFile>& files, const Holdout& holdout) {
  const auto& encoder = codec_->encoder();
  std::vector<std::unique_ptr<FieldStats>> stats;
  for (const auto& f : encoder.fields()) stats.push_back(f->new_stats());
  int threads = options_.num_workers() > 0 ? options_.num_workers() : available_cores();
  int64_t limit = options_.stats_records() > 0 ? options_.stats_records() : -1;
  int64_t seen = 0;
  std::vector<int64_t> rows;
  for (uint64_t f = 0; f < files.size() && (limit < 0 || seen < limit); ++f) {
    auto reader = open_record_reader(files[f].path, ReaderOptions{});
    uint64_t file_id = file_id_of(files[f].key);
    int64_t in_file = 0;
    while (auto chunk = reader->next()) {
      rows.clear();
      for (size_t i = 0; i < chunk->size(); ++i, ++in_file)
        if (holdout.keeps(file_id, in_file) && (limit < 0 || seen + static_cast<int64_t>(rows.size()) < limit))
          rows.push_back(static_cast<int64_t>(i));
      seen += static_cast<int64_t>(rows.size());
      auto chunk_stats = encoder.collect_stats(*chunk, &rows, threads);
      for (size_t k = 0; k < stats.size(); ++k) stats[k]->merge(*chunk_stats[k]);
      if (limit >= 0 && seen >= limit) break;
    }
  }
  if (seen == 0) throw DataError("data.streaming.train: the training files hold no records");
  codec_->fit(stats);
  // Per rank and epoch: the records counted (all of them when stats_records did not stop the pass).
  train_records_ = limit < 0 || seen < limit ? seen / options_.world_size() : -1;
}

int64_t StreamingDataModule::count_records(const std::vector<DiscoveredFile>& files, const Holdout& holdout) const {
  int64_t n = 0;
  for (const auto& file : files) {
    // A Parquet footer has the count; the held-out share is then taken as its expectation.
    int64_t rows = parquet_row_count(file.path);
    if (rows >= 0) {
      double kept = holdout.fraction <= 0 ? 1.0 : holdout.keep_held ? holdout.fraction : 1.0 - holdout.fraction;
      n += static_cast<int64_t>(static_cast<double>(rows) * kept);
      continue;
    }
    auto reader = open_record_reader(file.path, ReaderOptions{});
    uint64_t file_id = file_id_of(file.key);
    int64_t in_file = 0;
    while (auto chunk = reader->next())
      for (size_t i = 0; i < chunk->size(); ++i) n += holdout.keeps(file_id, in_file++) ? 1 : 0;
  }
  return n;
}

bool StreamingDataModule::shard(int64_t rank, int64_t world_size) {
  if (options_.world_size() != 1 && options_.world_size() != world_size)
    throw std::invalid_argument(fmt::format(
        "data.streaming.world_size is {}, but the run has {} processes: leave it at 1 under trainer.strategy ddp",
        options_.world_size(), world_size));
  options_.rank(static_cast<int>(rank)).world_size(static_cast<int>(world_size));
  return true;
}

void StreamingDataModule::setup(engine::Stage stage) {
  const auto& o = options_;
  if (stage == engine::Stage::kFit) {
    auto train_files = files_of(o.train(), "train");
    if (sharding_ == Sharding::kFile && static_cast<int64_t>(train_files.size()) < o.world_size())
      throw std::invalid_argument(fmt::format(
          "data.streaming.sharding is file, but {} training file(s) cannot give each of {} ranks a share: set "
          "data.streaming.sharding to chunk or record, or split the data into at least {} files",
          train_files.size(), o.world_size(), o.world_size()));
    Holdout train_part, held_part;
    if (!o.validate() && o.validate_fraction() > 0) {
      train_part = Holdout{o.validate_fraction(), false, o.seed()};
      held_part = Holdout{o.validate_fraction(), true, o.seed()};
    }
    if (!codec_->fitted()) fit_fields(train_files, train_part);
    // Schedules need the epoch's length: count it when the statistics pass did not (it was
    // capped by stats_records, or the model came from a checkpoint).
    if (train_records_ < 0) train_records_ = count_records(train_files, train_part) / o.world_size();
    train_ = stream(train_files, false, train_part, train_records_);
    if (o.validate())
      validate_ = stream(files_of(o.validate(), "validate"), true, Holdout{}, -1);
    else if (o.validate_fraction() > 0)
      validate_ = stream(train_files, true, held_part, -1);
    if (pending_state_.contains("train")) train_->load_state_dict(pending_state_["train"]);
  }
  if (!codec_->fitted()) return;  // the model reports that it needs training
  if (stage == engine::Stage::kValidate) validate_ = stream(files_of(o.validate(), "validate"), true, Holdout{}, -1);
  if (stage == engine::Stage::kTest) test_ = stream(files_of(o.test(), "test"), true, Holdout{}, -1);
  if (stage == engine::Stage::kPredict) predict_ = stream(files_of(o.predict(), "predict"), true, Holdout{}, -1);
}

std::shared_ptr<engine::DataLoader> StreamingDataModule::train_dataloader() { return train_; }
std::shared_ptr<engine::DataLoader> StreamingDataModule::val_dataloader() { return validate_; }
std::shared_ptr<engine::DataLoader> StreamingDataModule::test_dataloader() { return test_; }
std::shared_ptr<engine::DataLoader> StreamingDataModule::predict_dataloader() { return predict_; }

nlohmann::json StreamingDataModule::state_dict() const {
  nlohmann::json state = nlohmann::json::object();
  if (train_) state["train"] = train_->state_dict();
  return state;
}

void StreamingDataModule::load_state_dict(const nlohmann::json& state) {
  pending_state_ = state;
  if (train_ && state.contains("train")) train_->load_state_dict(state["train"]);
}

}  // namespace j2v
