// Nested records end to end: branches learn what per-record aggregates cannot, targets
// inside a list get one prediction per item, and predictions keep the record's shape.
#include <gtest/gtest.h>

#include <fstream>

#include "base/raw_json.h"
#include "data/synthetic_orders.h"
#include "data/table_data_module.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "model/quiet_trainer.h"
#include "test_util.h"

namespace j2v {
namespace {

engine::TrainerOptions quiet(const std::filesystem::path& root, int epochs) {
  return testing::quiet_trainer(root, epochs);
}

std::vector<std::string> orders(int64_t rows, uint64_t seed, bool flatten = false, int64_t max_items = 12) {
  return synthetic_orders({.rows = rows, .seed = seed, .max_items = max_items, .flatten = flatten});
}

double fit_and_test_accuracy(Model model, const std::vector<std::string>& train, const std::vector<std::string>& test,
                             int epochs, const std::string& metric, int64_t batch_size = 64) {
  TableDataModule data(model.codec(), {.train = train, .test = test}, TableDataOptions().batch_size(batch_size));
  auto root = testing::temp_dir("nested");
  engine::Trainer trainer(quiet(root, epochs));
  trainer.fit(model, data);
  double accuracy = trainer.test(model, data).at(metric);
  std::filesystem::remove_all(root);
  return accuracy;
}

TEST(NestedModel, LearnsTheItemInteractionThatAggregatesHide) {
  // flagged = some item is a fragile SKU *and* expensive: visible item by item, blurred
  // in per-order aggregates (count, price statistics, commonest SKU).
  auto options = ModelOptions().d_model(32).n_layers(1);
  auto nested = Model::from_schema(
      {Category("customer_tier"), Branch("items", {Category("sku"), Number("price")}).length(12),
       Category("flagged").target()},
      options);
  double nested_accuracy =
      fit_and_test_accuracy(nested, orders(6000, 1), orders(600, 2), 12, "record.flagged/test:accuracy:content");
  auto flat = Model::from_schema({Category("customer_tier"), Number("n_items"), Number("total"), Number("mean_price"),
                                  Number("max_price"), Number("min_price"), Number("distinct_skus"), Category("top_sku"),
                                  Category("flagged").target()},
                                 options);
  double flat_accuracy = fit_and_test_accuracy(flat, orders(6000, 1, true), orders(600, 2, true), 12,
                                               "record.flagged/test:accuracy:content");
  std::cout << "synthetic orders: nested accuracy " << nested_accuracy << ", flattened " << flat_accuracy << std::endl;
  EXPECT_GT(nested_accuracy, 0.90);
  EXPECT_GT(nested_accuracy, flat_accuracy + 0.08);
}

TEST(NestedModel, TargetsInsideAListArePredictedPerItem) {
  auto root = testing::temp_dir("nested_items");
  // returned = expensive item from one of the first three sellers (3% noise).
  auto model = Model::from_schema(
      {Category("customer_tier"),
       Branch("items", {Category("sku"), Number("price"), Category("seller"), Category("returned").target()})
           .length(12)
           .embed()},
      ModelOptions().d_model(32).n_layers(1));
  auto test = orders(200, 4);
  TableDataModule data(model.codec(), {.train = orders(2000, 3), .test = test, .predict = test},
                       TableDataOptions().batch_size(64));
  engine::Trainer trainer(quiet(root, 10));
  trainer.fit(model, data);
  EXPECT_GT(trainer.test(model, data).at("record.items.returned/test:accuracy:content"), 0.9);

  auto predictions = model.predict(test);
  size_t right = 0, items = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    auto order = nlohmann::json::parse(test[i]);
    const auto& returned = predictions[i]["predictions"]["record.items.returned"];
    // One entry per item kept (12 at most), in list order.
    ASSERT_EQ(returned.size(), std::min<size_t>(order["items"].size(), 12));
    for (size_t j = 0; j < returned.size(); ++j, ++items)
      right += returned[j]["content"]["value"] == (order["items"][j]["returned"].get<bool>() ? "true" : "false");
    const auto& embedding = predictions[i]["predictions"]["record.items"]["embedding"];
    ASSERT_EQ(embedding.size(), 32u);
  }
  EXPECT_GT(static_cast<double>(right) / static_cast<double>(items), 0.9);

  // "<MASK>" inside an item asks for that one cell.
  auto imputed = model.predict({R"({"items": [{"sku": "sku-3", "price": 5}, {"sku": "<MASK>", "price": 90}]})"});
  const auto& sku = imputed[0]["predictions"]["record.items.sku"];
  ASSERT_EQ(sku.size(), 2u);
  EXPECT_TRUE(sku[0].is_null());
  EXPECT_EQ(sku[1]["content"]["value"].get<std::string>().rfind("sku-", 0), 0u);

  // Predictions written as text (what a JSON Lines writer and the server ask for) read back
  // as the tree, every number the same double.
  model.impl().set_text_predictions(true);
  auto as_text = model.predict(test);
  model.impl().set_text_predictions(false);
  ASSERT_EQ(as_text.size(), predictions.size());
  for (size_t i = 0; i < test.size(); ++i) {
    auto row = nlohmann::json::parse(dump_with_raw_json(as_text[i]));
    EXPECT_EQ(row, predictions[i]) << "row " << i;
  }

  // Batch prediction writes the same nested shape to Parquet and to JSON Lines.
  for (std::string format : {"parquet", "jsonl"}) {
    auto out = root / ("out_" + format);
    auto writer = std::make_shared<engine::PredictionWriter>(
        engine::PredictionWriterOptions().path(out.string()).format(format));
    engine::Trainer predictor(quiet(root, 1).callbacks({writer}));
    predictor.predict(model, data, std::nullopt, false);
    EXPECT_EQ(writer->rows_written(), 200);
    EXPECT_FALSE(model.impl().text_predictions()) << "the writer asks for text for its own run only";
    ASSERT_TRUE(std::filesystem::exists(out / ("rank-0." + format)));
    if (format != "jsonl") continue;
    std::ifstream lines(out / "rank-0.jsonl");
    std::string line;
    size_t n = 0;
    for (; std::getline(lines, line); ++n) {
      ASSERT_LT(n, predictions.size());
      auto row = nlohmann::json::parse(line);
      EXPECT_EQ(row["inputs"], predictions[n]["inputs"]);
      // Another batch size than predict()'s: the same values up to float rounding.
      const auto& returned = row["predictions"]["record.items.returned"];
      ASSERT_EQ(returned.size(), predictions[n]["predictions"]["record.items.returned"].size());
      EXPECT_EQ(row["predictions"]["record.items"]["embedding"].size(), 32u);
    }
    EXPECT_EQ(n, test.size());
  }
  std::filesystem::remove_all(root);
}

TEST(NestedModel, AttentionVariantsAndDeepBranchesTrainAndKeepTheShape) {
  for (const std::string attention : {"mha", "mqa", "none"}) {
    auto root = testing::temp_dir("nested_deep");
    auto model = Model::from_schema(
        {Category("team"),
         Branch("users", {Category("name"), Branch("visits", {Number("seconds"), Category("page").p_mask(0.3)})
                                                .length(3)
                                                .attention(attention)
                                                .embed()})
             .length(2)
             .n_layers(2)
             .attention(attention),
         Number("score").target()},
        ModelOptions().d_model(16).n_heads(4).n_layers(1));
    std::vector<std::string> records;
    for (int i = 0; i < 40; ++i)
      records.push_back(nlohmann::json{{"team", i % 2 ? "a" : "b"},
                                       {"score", i % 7},
                                       {"users", {{{"name", "x"}, {"visits", {{{"seconds", i}, {"page", "p"}}}}},
                                                  {{"name", "y"},
                                                   {"visits", {{{"seconds", 1}, {"page", "q"}}, {{"page", "r"}}}}}}}}
                            .dump());
    TableDataModule data(model.codec(), {.train = records}, TableDataOptions().batch_size(8));
    engine::Trainer trainer(quiet(root, 1));
    trainer.fit(model, data);
    EXPECT_TRUE(std::isfinite(trainer.callback_metrics().at("loss/train"))) << attention;
    auto out = model.predict({records[1]});
    const auto& visits = out[0]["predictions"]["record.users.visits"];  // per user: one embedding
    ASSERT_EQ(visits.size(), 2u) << attention;
    EXPECT_EQ(visits[1]["embedding"].size(), 16u);
    EXPECT_TRUE(out[0]["predictions"]["record.score"]["content"]["value"].is_number());
    std::filesystem::remove_all(root);
  }
}

TEST(NestedModel, StormTracksBeatTheFirstObservation) {
  auto path = testing::shared_dataset("storms.jsonl");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no ../shared/datasets";
  std::ifstream in(path);
  std::vector<std::string> train, test;
  std::string line;
  for (int i = 0; std::getline(in, line); ++i) (i % 5 == 0 ? test : train).push_back(line);
  auto accuracy = [&](int length) {
    // The track without `status` (it names the category); length 1 sees only the first observation.
    auto model = Model::from_schema(
        {Number("year"),
         Branch("track", {Number("month"), Number("day"), Number("hour"), Number("lat"), Number("long"), Number("wind"),
                          Number("pressure"), Number("tropicalstorm_force_diameter"),
                          Number("hurricane_force_diameter")})
             .length(length)
             .overflow("head"),
         Category("max_category").target()},
        ModelOptions().d_model(32).n_layers(1));
    return fit_and_test_accuracy(model, train, test, 40, "record.max_category/test:accuracy:content", 32);
  };
  double whole = accuracy(64), first = accuracy(1);
  std::cout << "storms max_category accuracy: whole track " << whole << ", first observation " << first << std::endl;
  EXPECT_GT(whole, first + 0.1);
}

}  // namespace
}  // namespace j2v

namespace j2v {
namespace {

// Numbers equal to `tolerance`, everything else exactly.
void expect_close(const nlohmann::json& a, const nlohmann::json& b, double tolerance, const std::string& where) {
  if (a.is_number() && b.is_number()) {
    EXPECT_NEAR(a.get<double>(), b.get<double>(), tolerance) << where;
  } else if (a.is_object() && b.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (auto it = a.begin(); it != a.end(); ++it) {
      ASSERT_TRUE(b.contains(it.key())) << where << "." << it.key();
      expect_close(it.value(), b[it.key()], tolerance, where + "." + it.key());
    }
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], tolerance, where + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(a, b) << where;
  }
}

TEST(NestedModel, PackedItemsGiveWhatEverySlotPaddedGives) {
  // The item block and the list blocks run on the slots that hold an item only; every
  // output of an item, of a list and of the record is the same as when they run on all 12
  // slots, padding included (lists of 1 to 12 items here, most far from full).
  auto root = testing::temp_dir("nested_packed");
  auto model = Model::from_schema(
      {Category("customer_tier"),
       Branch("items", {Category("sku"), Number("price"), Category("seller"), Category("returned").target()})
           .length(12)
           .embed(),
       Category("flagged").target()},
      ModelOptions().d_model(32).n_layers(2));
  auto test = orders(150, 6);
  TableDataModule data(model.codec(), {.train = orders(600, 5)}, TableDataOptions().batch_size(64));
  engine::Trainer trainer(quiet(root, 2));
  trainer.fit(model, data);
  auto packed = model.predict(test);
  model.impl().set_item_packing(false);
  auto padded = model.predict(test);
  model.impl().set_item_packing(true);
  ASSERT_EQ(packed.size(), padded.size());
  size_t short_lists = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    if (nlohmann::json::parse(test[i])["items"].size() < 12) ++short_lists;
    expect_close(packed[i]["predictions"], padded[i]["predictions"], 1e-4, "row " + std::to_string(i));
  }
  EXPECT_GT(short_lists, 100u);
  // A batch in which no list holds an item (nothing to pack) still predicts every record.
  for (bool pack : {true, false}) {
    model.impl().set_item_packing(pack);
    auto empty = model.predict({R"({"customer_tier": "gold", "items": []})", R"({"customer_tier": "silver"})"});
    ASSERT_EQ(empty.size(), 2u);
    for (const auto& row : empty) {
      EXPECT_TRUE(row["predictions"]["record.flagged"].contains("content")) << row.dump();
      EXPECT_TRUE(row["predictions"]["record.items.returned"].empty()) << row.dump();
    }
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace j2v
