// StreamingDataModule and RecordStream: sharding, order, determinism, sampling, resumption,
// and learning from files read as they are needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "base/errors.h"
#include "data/record_batch.h"
#include "data/streaming_data_module.h"
#include "duckdb_util.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "model/quiet_trainer.h"
#include "test_util.h"

namespace j2v {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<int> kFileSizes = {37, 250, 1, 400, 113};  // 801 records over five files

// root/train/part-N.jsonl with consecutive ids; y = 3x + (c == "b" ? 2 : 0) + noise.
fs::path make_files(const std::string& name, const std::vector<int>& sizes = kFileSizes) {
  auto root = testing::temp_dir(name);
  fs::create_directories(root / "train");
  fs::create_directories(root / "predict");
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  int id = 0;
  for (size_t f = 0; f < sizes.size(); ++f) {
    std::vector<std::string> lines;
    for (int i = 0; i < sizes[f]; ++i, ++id) {
      double x = normal(rng);
      std::string c = id % 3 == 0 ? "b" : "a";
      lines.push_back(json{{"id", id}, {"x", x}, {"c", c}, {"y", 3 * x + (c == "b" ? 2 : 0) + 0.1 * normal(rng)}}.dump());
    }
    testing::write_lines(root / "train" / ("part-" + std::to_string(f) + ".jsonl"), lines);
  }
  testing::write_lines(root / "README.txt", {"not data"});
  return root;
}

Model make_model() {
  return Model::from_schema(Schema::from_fields_json("record", json::parse(R"({
      "x": "number", "c": "category", "y": {"type": "number", "target": true}})")),
                            ModelOptions().d_model(16).n_layers(1).n_heads(2));
}

StreamingDataOptions options(const fs::path& root) {
  return StreamingDataOptions().root(root.string()).suffix("jsonl").train("/train/").validate_fraction(0).seed(3).batch_size(32);
}

std::vector<std::vector<int>> batches_of(engine::DataLoader& loader, int64_t epoch, int64_t max_batches = -1) {
  std::vector<std::vector<int>> out;
  loader.start_epoch(epoch);
  while (max_batches < 0 || static_cast<int64_t>(out.size()) < max_batches) {
    auto batch = loader.next();
    if (!batch) break;
    auto& records = engine::batch_as<RecordBatch>(*batch);
    std::vector<int> ids;
    for (int64_t i = 0; i < records.size(); ++i) ids.push_back(json::parse(records.record(i))["id"].get<int>());
    out.push_back(std::move(ids));
  }
  return out;
}

std::vector<int> flat(const std::vector<std::vector<int>>& batches) {
  std::vector<int> ids;
  for (const auto& b : batches) ids.insert(ids.end(), b.begin(), b.end());
  return ids;
}

std::vector<int> train_ids(const Model& model, StreamingDataOptions o, int64_t epoch = 0) {
  StreamingDataModule data(model.codec(), std::move(o));
  data.setup(engine::Stage::kFit);
  return flat(batches_of(*data.train_dataloader(), epoch));
}

// The same files as Parquet under root/parquet/train (read with a shard's rows chosen by DuckDB).
void add_parquet_copies(const fs::path& root) {
  fs::create_directories(root / "parquet" / "train");
  for (const auto& entry : fs::directory_iterator(root / "train")) {
    std::string to = (root / "parquet" / "train" / entry.path().stem()).string() + ".parquet";
    testing::jsonl_to_parquet(entry.path().string(), to, 64);
  }
}

TEST(Streaming, EveryRecordOnceAcrossRanksAndWorkersWithEachSharding) {
  auto root = make_files("stream_shards");
  add_parquet_copies(root);
  Model model = make_model();
  for (const char* suffix : {"jsonl", "parquet"}) {
    for (const char* sharding : {"file", "chunk", "record"}) {
      SCOPED_TRACE(std::string(suffix) + ", " + sharding);
      fs::path format_root = std::string(suffix) == "parquet" ? root / "parquet" : root;
      std::map<int, int> seen;
      for (int rank = 0; rank < 3; ++rank) {
        auto o = options(format_root).suffix(suffix).sharding(sharding).chunk_size(16).shuffle_buffer(50)
                     .num_workers(2).world_size(3).rank(rank);
        for (int id : train_ids(model, o)) ++seen[id];
      }
      ASSERT_EQ(seen.size(), 801u);
      for (const auto& [id, count] : seen) ASSERT_EQ(count, 1) << "record " << id;
    }
  }
  fs::remove_all(root);
}

TEST(Streaming, TheSameSeedGivesTheSameStreamAndEachEpochAnotherOrder) {
  auto root = make_files("stream_seed");
  Model model = make_model();
  auto o = options(root).shuffle_buffer(200).num_workers(2);
  auto first = train_ids(model, o), again = train_ids(model, o), next_epoch = train_ids(model, o, 1);
  EXPECT_EQ(first, again);
  EXPECT_NE(first, next_epoch);
  std::vector<int> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(first, sorted);  // shuffled
  std::vector<int> all(801);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);
  auto other_seed = train_ids(model, options(root).shuffle_buffer(200).num_workers(2).seed(4));
  EXPECT_NE(first, other_seed);
  fs::remove_all(root);
}

TEST(Streaming, PredictKeepsTheInputOrderWithSeveralWorkers) {
  auto root = make_files("stream_order");
  Model model = make_model();
  {
    StreamingDataModule fit(model.codec(), options(root));
    fit.setup(engine::Stage::kFit);
  }
  add_parquet_copies(root);
  std::vector<int> expected(37 + 250 + 1 + 400);
  std::iota(expected.begin(), expected.end(), 0);
  for (const char* suffix : {"jsonl", "parquet"}) {
    SCOPED_TRACE(suffix);
    fs::path format_root = std::string(suffix) == "parquet" ? root / "parquet" : root;
    StreamingDataModule data(model.codec(), options(format_root).suffix(suffix).predict("/train/part-[0-3]").num_workers(3).batch_size(7));
    data.setup(engine::Stage::kPredict);
    auto batches = batches_of(*data.predict_dataloader(), 0);
    EXPECT_EQ(flat(batches), expected);
    for (size_t b = 0; b + 1 < batches.size(); ++b) EXPECT_EQ(batches[b].size(), 7u);
  }
  fs::remove_all(root);
}

TEST(Streaming, ARestoredStreamGoesOnWhereItStopped) {
  auto root = make_files("stream_resume");
  Model model = make_model();
  auto o = options(root).shuffle_buffer(100).num_workers(2);
  StreamingDataModule data(model.codec(), o);
  data.setup(engine::Stage::kFit);
  auto whole = batches_of(*data.train_dataloader(), 2);
  auto partial = batches_of(*data.train_dataloader(), 2, 5);
  json state = data.state_dict();
  EXPECT_EQ(state["train"]["batches"], 5);

  StreamingDataModule resumed(model.codec(), o);
  resumed.load_state_dict(state);
  resumed.setup(engine::Stage::kFit);
  auto rest = batches_of(*resumed.train_dataloader(), 2);
  ASSERT_EQ(rest.size() + 5, whole.size());
  EXPECT_EQ(rest, std::vector<std::vector<int>>(whole.begin() + 5, whole.end()));
  fs::remove_all(root);
}

TEST(Streaming, ResumingNeedsTheSameWorkersAndStreamsKnowTheirLength) {
  auto root = make_files("stream_resume_checks");
  Model model = make_model();
  StreamingDataModule data(model.codec(), options(root).num_workers(2).validate_fraction(0.1).stats_records(50));
  data.setup(engine::Stage::kFit);
  // The statistics pass stopped at 50 records; the epoch's length is still counted.
  auto train = flat(batches_of(*data.train_dataloader(), 0));
  EXPECT_EQ(data.train_records(), static_cast<int64_t>(train.size()));
  EXPECT_EQ(data.train_dataloader()->estimated_batches(), (static_cast<int64_t>(train.size()) + 31) / 32);
  json state = data.state_dict();
  StreamingDataModule other(model.codec(), options(root).num_workers(3).validate_fraction(0.1));
  other.setup(engine::Stage::kFit);
  try {
    other.load_state_dict(state);
    FAIL() << "a stream resumed with other workers";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("data.num_workers"), std::string::npos) << e.what();
  }
  // A fraction of a stream whose length is unknown (predict) is refused, not zero batches.
  StreamingDataModule predict(model.codec(), options(root).predict("/train/"));
  engine::Trainer trainer(testing::quiet_trainer(root / "runs", 1).limit_predict_batches(engine::BatchLimit::fraction(0.5)));
  try {
    trainer.predict(model, predict, std::nullopt, false);
    FAIL() << "half of an unknown length was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("trainer.limit_predict_batches is a fraction"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(Streaming, SampleRateAndAnEndlessStreamWithReplacement) {
  auto root = make_files("stream_sample");
  Model model = make_model();
  auto epoch0 = train_ids(model, options(root).sample_rate(0.25));
  auto epoch1 = train_ids(model, options(root).sample_rate(0.25), 1);
  // 801 x 0.25 = 200 expected, binomial sd 12.3: within 4 sd.
  EXPECT_NEAR(static_cast<double>(epoch0.size()), 200.25, 50);
  EXPECT_NE(std::set<int>(epoch0.begin(), epoch0.end()), std::set<int>(epoch1.begin(), epoch1.end()));

  StreamingDataModule data(model.codec(), options(root).replacement(true).sample_rate(1.0));
  data.setup(engine::Stage::kFit);
  auto loader = data.train_dataloader();
  EXPECT_EQ(loader->num_batches(), -1);
  auto ids = flat(batches_of(*loader, 0, 80));  // 80 x 32 = 2,560 records from 801
  ASSERT_EQ(ids.size(), 80u * 32u);
  std::map<int, int> counts;
  for (int id : ids) ++counts[id];
  EXPECT_GT(counts.size(), 700u);
  int most = 0;
  for (const auto& [id, n] : counts) most = std::max(most, n);
  EXPECT_GE(most, 5);  // Poisson(1) copies per pass over 3+ passes
  fs::remove_all(root);
}

TEST(Streaming, HeldOutValidationRecordsNeverTrain) {
  auto root = make_files("stream_holdout");
  Model model = make_model();
  StreamingDataModule data(model.codec(), options(root).validate_fraction(0.2).num_workers(2));
  data.setup(engine::Stage::kFit);
  auto train = flat(batches_of(*data.train_dataloader(), 0));
  auto validate = flat(batches_of(*data.val_dataloader(), 0));
  std::set<int> t(train.begin(), train.end()), v(validate.begin(), validate.end());
  EXPECT_EQ(t.size() + v.size(), 801u);
  for (int id : v) EXPECT_FALSE(t.count(id)) << id;
  EXPECT_NEAR(static_cast<double>(v.size()) / 801, 0.2, 0.06);
  EXPECT_TRUE(std::is_sorted(validate.begin(), validate.end()));  // validation keeps file order
  EXPECT_EQ(data.train_records(), static_cast<int64_t>(t.size()));
  // The same records are held out in every epoch and every run.
  EXPECT_EQ(flat(batches_of(*data.val_dataloader(), 1)), validate);
  fs::remove_all(root);
}

TEST(Streaming, MistakesAndBadFilesAreClearErrors) {
  auto root = make_files("stream_errors");
  Model model = make_model();
  auto message = [&](StreamingDataOptions o) -> std::string {
    try {
      StreamingDataModule data(model.codec(), std::move(o));
      data.setup(engine::Stage::kFit);
      batches_of(*data.train_dataloader(), 0);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(options(root / "nope")).find("does not exist"), std::string::npos);
  EXPECT_NE(message(options(root).train("/trian/")).find("data.streaming.train: '/trian/' matches none of the 5"),
            std::string::npos);
  EXPECT_NE(message(options(root).train("([")).find("not a valid regular expression"), std::string::npos);
  EXPECT_NE(message(options(root).sharding("rows")).find("allowed: file, chunk, record"), std::string::npos);
  EXPECT_NE(message(options(root).suffix("avro")).find("data.streaming.suffix"), std::string::npos);
  EXPECT_NE(message(options(root).sample_rate(1.5)).find("sample_rate"), std::string::npos);

  // A damaged file later in the stream: the fields are fitted on the first records only,
  // so the stream itself meets the damage, and stops with it rather than skipping it.
  std::string text = std::string(100000, ' ');
  fs::path bad = root / "train" / "part-9.jsonl.gz";
  {
    std::ofstream out(bad, std::ios::binary);
    out << "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" << "garbage that is not deflate data";
  }
  std::string m = message(options(root).stats_records(100));
  EXPECT_NE(m.find(bad.string()), std::string::npos) << m;
  // A record that does not fit the schema names its file and line.
  fs::remove(bad);
  testing::write_lines(root / "train" / "part-9.jsonl", {R"({"id": 1, "x": 1, "y": 1})", R"({"id": 2, "x": [1, 2], "y": 1})"});
  m = message(options(root).stats_records(100));
  EXPECT_NE(m.find((root / "train" / "part-9.jsonl").string() + ":2: field 'record.x'"), std::string::npos) << m;
  fs::remove_all(root);
}

// A training test (the suite name puts it with the tests that run one at a time).
TEST(StreamingModel, LearnsFromParquetFilesReadAsNeeded) {
  auto root = make_files("stream_learn", {1500, 1500, 1000});
  // The same records as Parquet: the stream reads them through DuckDB.
  fs::create_directories(root / "parquet" / "train");
  for (int f = 0; f < 3; ++f) {
    std::string from = (root / "train" / ("part-" + std::to_string(f) + ".jsonl")).string();
    std::string to = (root / "parquet" / "train" / ("part-" + std::to_string(f) + ".parquet")).string();
    testing::jsonl_to_parquet(from, to);
  }
  Model model = make_model();
  StreamingDataModule data(
      model.codec(), StreamingDataOptions().root((root / "parquet").string()).suffix("parquet").train("/train/").seed(1).num_workers(2).batch_size(32));
  engine::Trainer trainer(testing::quiet_trainer(root / "runs", 12));
  trainer.fit(model, data);
  double rmse = std::sqrt(trainer.callback_metrics().at("loss/validate"));
  // y = 3x + 2[c = b] + noise(0.1) has std ~3.1; a model that learned it is far below 1.
  auto metrics = trainer.callback_metrics();
  ASSERT_TRUE(metrics.count("record.y/validate:rmse:content")) << "metrics: " << json(metrics).dump();
  EXPECT_LT(metrics.at("record.y/validate:rmse:content"), 0.6) << "loss " << rmse;
  std::cout << "validation RMSE " << metrics.at("record.y/validate:rmse:content") << " (target std ~3.1)\n";
  fs::remove_all(root);
}

}  // namespace
}  // namespace j2v
