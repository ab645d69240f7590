// The schema as live model state: changes keep what still fits, overrides restore exactly,
// init_from fine-tunes from another schema's checkpoint, and bad changes change nothing.
#include <gtest/gtest.h>

#include "data/synthetic_orders.h"
#include "data/table_data_module.h"
#include "engine/callback.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "model/quiet_trainer.h"
#include "test_util.h"

namespace j2v {
namespace {

// fraud = expensive purchase at a risky merchant; `channel` is noise.
std::vector<std::string> fraud_records(int n, uint64_t seed, bool with_label = true) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  const char* merchants[] = {"books", "coffee", "jewelry", "electronics"};
  const char* channels[] = {"web", "store"};
  for (int i = 0; i < n; ++i) {
    std::string merchant = merchants[rng() % 4];
    double amount = static_cast<double>(rng() % 500);
    bool fraud = (merchant == "jewelry" || merchant == "electronics") && amount > 250;
    nlohmann::json r{{"amount", amount}, {"merchant", merchant}, {"channel", channels[rng() % 2]}};
    if (with_label) r["fraud"] = fraud ? "yes" : "no";
    out.push_back(r.dump());
  }
  return out;
}

std::vector<std::string> values(const nlohmann::json& predictions, const std::string& address) {
  std::vector<std::string> out;
  for (const auto& p : predictions) out.push_back(p["predictions"][address]["content"].dump());
  return out;
}

double accuracy(const Model& model, const std::vector<std::string>& records) {
  auto out = model.predict(records);
  int right = 0;
  for (size_t i = 0; i < records.size(); ++i)
    right += out[i]["predictions"]["record.fraud"]["content"]["value"] == nlohmann::json::parse(records[i])["fraud"];
  return static_cast<double>(right) / static_cast<double>(records.size());
}

Model trained_fraud_model(const std::filesystem::path& root, std::string* best = nullptr) {
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("channel"), Category("fraud").target()},
                                  ModelOptions().d_model(32).n_layers(1));
  TableDataModule data(model.codec(), {.train = fraud_records(2000, 2), .validate = fraud_records(300, 3)},
                       TableDataOptions().batch_size(64));
  auto checkpoint = std::make_shared<engine::ModelCheckpoint>();
  engine::Trainer trainer(testing::quiet_trainer(root, 12, true).callbacks({checkpoint}));
  trainer.fit(model, data);
  if (best) *best = checkpoint->best_model_path();
  return model;
}

TEST(SchemaChangeModel, ChangesKeepWhatFitsAndOverridesRestoreExactly) {
  auto root = testing::temp_dir("schema_change");
  auto model = trained_fraud_model(root);
  auto probe = fraud_records(400, 9);
  auto before = model.predict(probe);
  ASSERT_GT(accuracy(model, probe), 0.95);

  // An option that only matters in training: every weight carries over, predictions are the same.
  auto change = model.update(where("name") == "amount", {{"p_mask", 0.1}});
  EXPECT_TRUE(change.new_parameters.empty()) << change.summary();
  EXPECT_TRUE(change.partly_kept_parameters.empty()) << change.summary();
  EXPECT_EQ(change.kept_state.size(), 4u);
  EXPECT_EQ(model.schema().fields[0].p_mask, 0.1);
  EXPECT_EQ(values(model.predict(probe), "record.fraud"), values(before, "record.fraud"));

  {
    // Switching the merchant off: its rows go, the rest stays; the model loses the signal.
    auto off = model.override(where("name") == "merchant", {{"active", false}});
    EXPECT_TRUE(off.change().new_parameters.empty()) << "a field fewer initialises nothing: " << off.change().summary();
    EXPECT_LT(accuracy(model, probe), 0.9);
    // Switching the noise field off costs (almost) nothing.
  }
  EXPECT_EQ(values(model.predict(probe), "record.fraud"), values(before, "record.fraud")) << "restored exactly";
  {
    auto off = model.override(where("name") == "channel", {{"active", false}});
    EXPECT_GT(accuracy(model, probe), 0.93);
  }

  // Removing a field keeps the others' state and weights; predictions still work.
  auto removed = model.remove(where("name") == "channel");
  EXPECT_TRUE(model.trained());
  EXPECT_EQ(removed.refit_state.size(), 0u);
  EXPECT_GT(accuracy(model, probe), 0.93);

  // A new field has no state yet: the model needs a fit before it predicts, and the fit keeps
  // the rest (it starts from the trained weights, so one epoch is plenty).
  auto extended = model.extend(where("address") == "record", {Category("channel")});
  EXPECT_TRUE(extended.weights_pending);
  EXPECT_EQ(extended.refit_state, std::vector<std::string>{"record.channel"});
  EXPECT_FALSE(model.trained());
  EXPECT_THROW(model.predict(probe), std::invalid_argument);
  TableDataModule data(model.codec(), {.train = fraud_records(2000, 4)}, TableDataOptions().batch_size(64).validate_fraction(0));
  engine::Trainer trainer(testing::quiet_trainer(root / "extended", 1));
  trainer.fit(model, data);
  EXPECT_GT(accuracy(model, probe), 0.93);

  // reset forgets: the merchant learns its vocabulary and weights again at the next fit.
  auto reset = model.reset(where("name") == "merchant");
  EXPECT_EQ(reset.refit_state, std::vector<std::string>{"record.merchant"});
  EXPECT_TRUE(reset.weights_pending);
  EXPECT_FALSE(model.trained());
  std::filesystem::remove_all(root);
}

TEST(SchemaChangeModel, BadChangesChangeNothing) {
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Category("fraud").target()});
  auto before = model.schema().to_json();
  EXPECT_THROW(model.update(where("name") == "nothing", {{"p_mask", 0.1}}), SchemaError);
  try {
    model.update(where("type") == "number", {{"max_vocab_size", 10}});
    ADD_FAILURE() << "an option a number does not take";
  } catch (const SchemaError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option 'max_vocab_size'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(model.schema().to_json(), before);

  // A change while a Trainer runs the model is refused, and the run goes on.
  struct TriesToChange : engine::Callback {
    Model* model;
    std::string error;
    std::string state_key() const override { return "TriesToChange"; }
    void on_train_epoch_start(engine::Trainer&, engine::Module&) override {
      try {
        model->update(where("name") == "amount", {{"p_mask", 0.2}});
      } catch (const std::logic_error& e) {
        error = e.what();
      }
    }
  };
  auto callback = std::make_shared<TriesToChange>();
  callback->model = &model;
  auto root = testing::temp_dir("schema_change_running");
  TableDataModule data(model.codec(), {.train = fraud_records(200, 5)}, TableDataOptions().validate_fraction(0));
  engine::Trainer trainer(testing::quiet_trainer(root, 1).callbacks({callback}));
  trainer.fit(model, data);
  EXPECT_NE(callback->error.find("cannot change while a Trainer runs it"), std::string::npos) << callback->error;
  EXPECT_EQ(model.schema().to_json(), before);
  EXPECT_TRUE(model.trained());
  std::filesystem::remove_all(root);
}

TEST(SchemaChangeModel, InitFromTakesMatchingStateAndWeightsFromAnotherSchema) {
  auto root = testing::temp_dir("init_from");
  std::string best;
  trained_fraud_model(root, &best);
  ASSERT_FALSE(best.empty());
  auto source = Model::load(best);
  // A new target, one field gone, one new: the shared fields carry over.
  auto model = Model::from_schema({Number("amount"), Category("merchant"), Boolean("late"), Category("fraud").target()},
                                  ModelOptions().d_model(32).n_layers(1));
  auto change = model.init_from(best);
  EXPECT_EQ(change.kept_state, (std::vector<std::string>{"record.amount", "record.merchant", "record.fraud"}));
  EXPECT_EQ(change.refit_state, std::vector<std::string>{"record.late"});
  auto records = fraud_records(64, 6);
  for (auto& r : records) {
    auto j = nlohmann::json::parse(r);
    j["late"] = j["amount"].get<double>() > 100;
    r = j.dump();
  }
  TableDataModule data(model.codec(), {.train = records}, TableDataOptions().validate_fraction(0));
  data.setup(engine::Stage::kFit);
  model.impl().setup(engine::Stage::kFit);
  // Before any step, the merchant's embedding is the source's.
  auto theirs = source.impl().named_parameters(true), mine = model.impl().named_parameters(true);
  std::string merchant_source, merchant_mine;
  for (const auto& p : theirs) if (p.key().find("merchant") != std::string::npos) { merchant_source = p.key(); break; }
  for (const auto& p : mine) if (p.key().find("merchant") != std::string::npos) { merchant_mine = p.key(); break; }
  ASSERT_FALSE(merchant_source.empty());
  EXPECT_TRUE(torch::equal(*theirs.find(merchant_source), *mine.find(merchant_mine)));

  // The same schema from the same checkpoint predicts exactly as the checkpoint does.
  auto same = Model::from_schema({Number("amount"), Category("merchant"), Category("channel"), Category("fraud").target()},
                                 ModelOptions().d_model(32).n_layers(1));
  auto same_change = same.init_from(best);
  EXPECT_TRUE(same_change.refit_state.empty());
  TableDataModule same_data(same.codec(), {.train = fraud_records(64, 7)}, TableDataOptions().validate_fraction(0));
  same_data.setup(engine::Stage::kFit);
  same.impl().setup(engine::Stage::kFit);
  auto probe = fraud_records(50, 8);
  EXPECT_EQ(values(same.predict(probe), "record.fraud"), values(source.predict(probe), "record.fraud"));

  // A checkpoint with nothing in common is refused, and the model is left as it was.
  auto other = Model::from_schema({Number("height"), Category("species").target()});
  try {
    other.init_from(best);
    ADD_FAILURE() << "nothing in common";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no field in common"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(other.codec()->fitted());
  std::filesystem::remove_all(root);
}

TEST(SchemaChangeModel, NestedModelsKeepBranchWeightsAcrossChanges) {
  auto root = testing::temp_dir("schema_change_nested");
  auto schema = [](bool with_quantity) {
    std::vector<FieldSpec> items{Category("sku"), Number("price")};
    if (with_quantity) items.push_back(Number("quantity"));
    return std::vector<FieldSpec>{Category("customer_tier"), Branch("items", items).length(12).n_layers(1),
                                  Category("flagged").target()};
  };
  auto model = Model::from_schema(schema(true), ModelOptions().d_model(32).n_layers(1));
  auto train = synthetic_orders({.rows = 600, .seed = 1, .max_items = 12});
  TableDataModule data(model.codec(), {.train = train}, TableDataOptions().batch_size(64).validate_fraction(0));
  auto checkpoint = std::make_shared<engine::ModelCheckpoint>();
  engine::Trainer trainer(testing::quiet_trainer(root, 2, true).callbacks({checkpoint}));
  trainer.fit(model, data);
  auto probe = synthetic_orders({.rows = 40, .seed = 2, .max_items = 12});
  auto before = model.predict(probe);

  // The same schema from the checkpoint: identical predictions.
  auto again = Model::from_schema(schema(true), ModelOptions().d_model(32).n_layers(1));
  again.init_from(checkpoint->last_model_path());
  TableDataModule again_data(again.codec(), {.train = train}, TableDataOptions().validate_fraction(0));
  again_data.setup(engine::Stage::kFit);
  again.impl().setup(engine::Stage::kFit);
  auto loaded = Model::load(checkpoint->last_model_path());
  EXPECT_EQ(values(again.predict(probe), "record.flagged"), values(loaded.predict(probe), "record.flagged"));

  // A field fewer inside the branch: everything else carried over, nothing initialised.
  auto change = model.remove(where("address") == "record.items.quantity");
  EXPECT_TRUE(change.new_parameters.empty()) << change.summary();
  EXPECT_TRUE(model.trained());
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace j2v
