#include <gtest/gtest.h>

#include "data/table_data_module.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/checkpoint_io.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "model/fraud_records.h"
#include "model/quiet_trainer.h"
#include "test_util.h"

namespace j2v {
namespace {

using testing::fraud_records;

engine::TrainerOptions quiet(const std::filesystem::path& root, int epochs) {
  return testing::quiet_trainer(root, epochs, /*checkpointing=*/true);
}

TEST(Model, TheIssueExampleTrainsAndPredicts) {
  auto records = fraud_records(64, 1);
  auto model = Model::from_schema(
      {Number("amount"), Category("merchant").max_vocab_size(128), Category("fraud").target().max_vocab_size(2)},
      ModelOptions().d_model(32).n_layers(1).n_heads(4));
  TableDataModule data(model.codec(), {.train = records, .validate = records}, TableDataOptions().batch_size(2));
  auto root = testing::temp_dir("model_example");
  engine::Trainer trainer(quiet(root, 1));
  trainer.fit(model, data);
  auto out = model.predict({R"({"amount": 12.5, "merchant": "books"})"});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["inputs"]["merchant"], "books");
  const auto& fraud = out[0]["predictions"]["record.fraud"];
  EXPECT_TRUE(fraud["content"]["value"] == "yes" || fraud["content"]["value"] == "no");
  EXPECT_GT(fraud["content"]["probability"].get<double>(), 0.0);
  EXPECT_EQ(fraud["content"]["topk"].size(), 3u);  // yes, no, and the unavailable bucket
  double state_total = 0;
  for (auto& [_, p] : fraud["state"].items()) state_total += p.get<double>();
  EXPECT_NEAR(state_total, 1.0, 1e-5);
  std::filesystem::remove_all(root);
}

TEST(Model, DefaultBatchSizeFollowsTheTrainingRows) {
  // A small table gets small batches (a dozen steps an epoch or more), a large one 256.
  for (auto [rows, expected] : std::vector<std::pair<int, int64_t>>{{150, 32}, {1000, 32}, {3000, 128}, {9000, 256}}) {
    auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("fraud").target()});
    TableDataModule data(model.codec(), {.train = fraud_records(rows, 4)}, TableDataOptions().validate_fraction(0));
    EXPECT_EQ(data.batch_size(), 256) << "before the rows are known";
    data.setup(engine::Stage::kFit);
    EXPECT_EQ(data.batch_size(), expected) << rows << " rows";
    EXPECT_EQ(data.train_dataloader()->num_batches(), (rows + expected - 1) / expected);
  }
  // A batch size given is kept.
  auto model = Model::from_schema({Number("amount"), Category("fraud").target()});
  TableDataModule given(model.codec(), {.train = fraud_records(150, 4)}, TableDataOptions().batch_size(100));
  given.setup(engine::Stage::kFit);
  EXPECT_EQ(given.batch_size(), 100);
}

TEST(Model, LearnsAnInteractionAndReloadsFromItsCheckpointAlone) {
  auto root = testing::temp_dir("model_learn");
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("fraud").target()},
                                  ModelOptions().d_model(32).n_layers(1).embed(true));
  TableDataModule data(model.codec(), {.train = fraud_records(2000, 2), .test = fraud_records(500, 3)}, TableDataOptions().batch_size(64));
  auto checkpoint = std::make_shared<engine::ModelCheckpoint>();
  engine::Trainer trainer(quiet(root, 15).callbacks({checkpoint}));
  trainer.fit(model, data);
  auto metrics = trainer.test(model, data);
  // The label is an exact function of (merchant, amount > 250); a model that learned the
  // interaction is nearly perfect, one that did not stays near 75%.
  EXPECT_GT(metrics.at("record.fraud/test:accuracy:content"), 0.95);

  auto loaded = Model::load(checkpoint->best_model_path());
  auto probe = fraud_records(20, 4);
  auto a = Model::load(checkpoint->best_model_path()).predict(probe);
  auto b = loaded.predict(probe);
  ASSERT_EQ(a.size(), 20u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["predictions"]["record.fraud"]["content"]["value"], b[i]["predictions"]["record.fraud"]["content"]["value"]);
    EXPECT_EQ(a[i]["inputs"], nlohmann::json::parse(probe[i]));  // input order is kept
    auto embedding = a[i]["predictions"]["record"]["embedding"].get<std::vector<double>>();
    ASSERT_EQ(embedding.size(), 32u);
    double norm = 0;
    for (double v : embedding) norm += v * v;
    EXPECT_NEAR(norm, 1.0, 1e-4);  // L2-normalised
  }
  std::filesystem::remove_all(root);
}

TEST(Model, TrainsWithThreadReplicas) {
  auto root = testing::temp_dir("model_replicas");
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("fraud").target()},
                                  ModelOptions().d_model(32).n_layers(1));
  TableDataModule data(model.codec(), {.train = fraud_records(2000, 12), .test = fraud_records(500, 13)}, TableDataOptions().batch_size(32));
  engine::Trainer trainer(quiet(root, 15).devices(2).enable_checkpointing(false));
  trainer.fit(model, data);
  EXPECT_GT(trainer.test(model, data).at("record.fraud/test:accuracy:content"), 0.95);
  std::filesystem::remove_all(root);
}

TEST(Model, TrainingOnAReplicaPerCoreRepeatsExactly) {
  // Two cores: each batch trains split across two replicas on two threads. Dropout and
  // masking draw from a stream per replica seeded from the trainer's seed, so two fits are
  // the same to the last bit however the threads interleave.
  auto root = testing::temp_dir("model_repeat");
  auto fit = [&] {
    auto model = Model::from_schema({Number("amount").p_mask(0.2), Category("merchant"), Category("fraud").target()},
                                    ModelOptions().d_model(16).n_layers(1).dropout(0.2));
    TableDataModule data(model.codec(), {.train = fraud_records(600, 21)}, TableDataOptions().batch_size(64));
    engine::Trainer trainer(quiet(root, 2).enable_checkpointing(false).logger(false));
    trainer.fit(model, data);
    auto out = model.predict({R"({"amount": 120, "merchant": "books"})"});
    return std::make_pair(trainer.callback_metrics().at("loss/train"),
                          out[0]["predictions"]["record.fraud"]["content"]["topk"].dump());
  };
  auto first = fit(), second = fit();
  ASSERT_NE(first.second, "null");
  EXPECT_EQ(first.first, second.first);
  EXPECT_EQ(first.second, second.second);
  std::filesystem::remove_all(root);
}

TEST(Model, MaskLiteralImputesAField) {
  auto root = testing::temp_dir("model_mask");
  auto model = Model::from_schema({Number("amount").p_mask(0.3), Category("merchant").p_mask(0.3), Category("fraud").target()},
                                  ModelOptions().d_model(16).n_layers(1));
  TableDataModule data(model.codec(), {.train = fraud_records(500, 5)}, TableDataOptions().batch_size(64));
  engine::Trainer trainer(quiet(root, 2).enable_checkpointing(false));
  trainer.fit(model, data);
  auto out = model.predict({R"({"amount": "<MASK>", "merchant": "books"})", R"({"amount": 3, "merchant": "books"})"});
  EXPECT_TRUE(out[0]["predictions"].contains("record.amount"));
  EXPECT_TRUE(out[0]["predictions"]["record.amount"]["content"]["value"].is_number());
  EXPECT_FALSE(out[1]["predictions"].contains("record.amount"));  // only masked cells are imputed
  std::filesystem::remove_all(root);
}

TEST(Model, PredictBeforeTrainingIsAClearError) {
  auto model = Model::from_schema({Number("amount"), Category("fraud").target()});
  try {
    model.predict({R"({"amount": 1})"});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("has not been trained"), std::string::npos);
  }
}

TEST(Model, WriterStreamsRowsInInputOrderAndFailsWhole) {
  auto root = testing::temp_dir("model_writer");
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("fraud").target()},
                                  ModelOptions().d_model(16).n_layers(1));
  auto predict = fraud_records(49, 6);
  predict.push_back(R"({"merchant":"books", "amount":1.50e1 })");  // keys unsorted, a number spelled its own way
  TableDataModule data(model.codec(), {.train = fraud_records(300, 7), .predict = predict}, TableDataOptions().batch_size(16));
  engine::Trainer fit_trainer(quiet(root, 1).enable_checkpointing(false));
  fit_trainer.fit(model, data);

  auto writer = std::make_shared<engine::PredictionWriter>(
      engine::PredictionWriterOptions().path((root / "out").string()).format("jsonl").flush_every_n_batches(1));
  engine::Trainer trainer(quiet(root, 1).callbacks({writer}));
  trainer.predict(model, data, std::nullopt, false);
  std::ifstream in(root / "out" / "rank-0.jsonl");
  std::string line, last_line;
  size_t n = 0;
  while (std::getline(in, line)) {
    last_line = line;
    auto row = nlohmann::json::parse(line);
    EXPECT_EQ(row["inputs"], nlohmann::json::parse(predict[n]));
    EXPECT_TRUE(row["predictions"].contains("record.fraud"));
    ++n;
  }
  EXPECT_EQ(n, predict.size());
  // Each input record is written as it was read, not re-printed (trailing blanks aside).
  EXPECT_NE(last_line.find(R"("inputs":{"merchant":"books", "amount":1.50e1 },)"), std::string::npos) << last_line;

  // A postprocessor reshapes rows into flat columns for a warehouse table.
  auto compact = std::make_shared<engine::PredictionWriter>(engine::PredictionWriterOptions().path((root / "compact").string()).postprocessor(
      [](const engine::PredictContext&, nlohmann::json rows) {
        nlohmann::json out = nlohmann::json::array();
        for (auto& r : rows)
          out.push_back({{"merchant", r["inputs"]["merchant"]},
                         {"label", r["predictions"]["record.fraud"]["content"]["value"]},
                         {"probability", r["predictions"]["record.fraud"]["content"]["probability"]}});
        return out;
      }));
  engine::Trainer compact_trainer(quiet(root, 1).callbacks({compact}));
  compact_trainer.predict(model, data, std::nullopt, false);
  EXPECT_EQ(compact->rows_written(), 50);
  EXPECT_TRUE(std::filesystem::exists(root / "compact" / "rank-0.parquet"));

  // A postprocessor that breaks row alignment fails the run and leaves no output file.
  auto bad = std::make_shared<engine::PredictionWriter>(engine::PredictionWriterOptions().path((root / "bad").string()).postprocessor(
      [](const engine::PredictContext&, nlohmann::json rows) {
        rows.erase(rows.begin());
        return rows;
      }));
  engine::Trainer bad_trainer(quiet(root, 1).callbacks({bad}));
  try {
    bad_trainer.predict(model, data, std::nullopt, false);
    FAIL() << "expected an alignment error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("keep rows aligned with the batch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(root / "bad" / "rank-0.parquet"));
  std::filesystem::remove_all(root);
}

TEST(Model, ReachesRandomForestQualityOnChurn) {
  auto path = testing::shared_dataset("wa_churn.jsonl");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no ../shared/datasets";
  // The bench/accuracy split: line i % 5 == 0 is test, the rest train (with 10% held out).
  std::ifstream in(path);
  std::vector<std::string> train, test;
  std::string line;
  for (int i = 0; std::getline(in, line); ++i) (i % 5 == 0 ? test : train).push_back(line);
  Schema schema;
  schema.fields.push_back(Category("churn").target());
  for (const char* n : {"female", "senior_citizen", "partner", "dependents", "tenure", "phone_service",
                        "paperless_billing", "monthly_charges", "total_charges"})
    schema.fields.push_back(Number(n));
  for (const char* n : {"multiple_lines", "internet_service", "online_security", "online_backup", "device_protection",
                        "tech_support", "streaming_tv", "streaming_movies", "contract", "payment_method"})
    schema.fields.push_back(Category(n));
  auto model = Model::from_schema(schema);
  TableDataModule data(model.codec(), {.train = train, .test = test});
  auto root = testing::temp_dir("model_churn");
  auto stop = std::make_shared<engine::EarlyStopping>(engine::EarlyStoppingOptions().patience(5));
  auto checkpoint = std::make_shared<engine::ModelCheckpoint>();
  engine::Trainer trainer(quiet(root, 40).callbacks({stop, checkpoint}));
  trainer.fit(model, data);
  auto metrics = trainer.test(model, data, std::string("best"));
  // A random forest (500 trees) reaches 0.81 AUC on this split (bench/accuracy).
  EXPECT_GT(metrics.at("record.churn/test:auc:content"), 0.81);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace j2v
