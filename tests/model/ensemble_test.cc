#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "data/table_data_module.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "model/fraud_records.h"
#include "model/quiet_trainer.h"
#include "test_util.h"

namespace j2v {
namespace {

using testing::fraud_records;

std::vector<FieldSpec> fraud_fields() {
  return {Number("amount"), Category("merchant"), Category("fraud").target()};
}

// One of an ensemble's networks as a model of its own: same codec, member m's weights.
std::shared_ptr<ModelImpl> member_alone(const Model& ensemble, int m) {
  auto& whole = dynamic_cast<ModelImpl&>(static_cast<engine::Module&>(ensemble));
  auto single = std::make_shared<ModelImpl>(whole.codec(), ModelOptions(whole.options()).ensemble(1));
  single->setup(engine::Stage::kPredict);  // the codec is fitted: builds the network
  torch::NoGradGuard no_grad;
  auto theirs = whole.named_parameters(true);
  std::string prefix = m == 0 ? "" : "member" + std::to_string(m) + ".";
  for (auto& p : single->named_parameters(true)) {
    const auto* source = theirs.find(prefix + p.key());
    if (!source) throw std::runtime_error("no parameter " + prefix + p.key());
    p.value().copy_(*source);
  }
  single->eval();
  return single;
}

std::map<std::string, double> class_probabilities(const nlohmann::json& row) {
  std::map<std::string, double> p;
  for (const auto& entry : row["predictions"]["record.fraud"]["content"]["topk"])
    p[entry["label"].is_null() ? "<unavailable>" : entry["label"].get<std::string>()] = entry["probability"];
  return p;
}

TEST(Ensemble, LearnsAndPredictsTheMeanOfItsMembersLogits) {
  auto root = testing::temp_dir("ensemble");
  auto model = Model::from_schema(fraud_fields(), ModelOptions().d_model(32).n_layers(1).ensemble(3));
  TableDataModule data(model.codec(), {.train = fraud_records(2000, 2), .test = fraud_records(500, 3)},
                       TableDataOptions().batch_size(64));
  auto checkpoint = std::make_shared<engine::ModelCheckpoint>();
  engine::Trainer trainer(testing::quiet_trainer(root, 10, true).callbacks({checkpoint}));
  trainer.fit(model, data);
  // The rule is an interaction of two fields; a model that learned it scores near 1.
  auto metrics = trainer.test(model, data);
  EXPECT_GT(metrics.at("record.fraud/test:accuracy:content"), 0.95);

  // Three networks with their own weights, all in the checkpoint.
  auto& whole = dynamic_cast<ModelImpl&>(static_cast<engine::Module&>(model));
  auto parameters = whole.named_parameters(true);
  ASSERT_TRUE(parameters.contains("member2.decoder.queries"));
  EXPECT_FALSE(parameters.contains("member3.decoder.queries"));
  EXPECT_FALSE(torch::equal(parameters["decoder.queries"], parameters["member1.decoder.queries"]));

  auto probe = fraud_records(40, 9);
  auto ensemble = Model::load(checkpoint->best_model_path());
  EXPECT_EQ(ensemble.options().ensemble(), 3);
  auto together = ensemble.predict(probe);
  std::vector<nlohmann::json> alone;
  for (int m = 0; m < 3; ++m) alone.push_back(member_alone(ensemble, m)->predict_records(probe));
  // Averaged logits: each class's probability is proportional to the geometric mean of the
  // members' probabilities of it.
  for (size_t i = 0; i < probe.size(); ++i) {
    auto p = class_probabilities(together[i]);
    std::map<std::string, double> log_sum;
    for (const auto& member : alone)
      for (const auto& [label, q] : class_probabilities(member[i])) log_sum[label] += std::log(q) / 3;
    ASSERT_EQ(p.size(), log_sum.size());
    double total = 0;
    for (const auto& [label, l] : log_sum) total += std::exp(l);
    for (const auto& [label, l] : log_sum) EXPECT_NEAR(p[label], std::exp(l) / total, 2e-5) << probe[i] << " " << label;
  }

  // A built network of another ensemble size does not load the checkpoint by halves.
  auto single = member_alone(ensemble, 0);
  TableDataModule probe_data(single->codec(), {.test = fraud_records(100, 5)}, TableDataOptions().batch_size(64));
  engine::Trainer again(testing::quiet_trainer(root, 1));
  try {
    again.test(*single, probe_data, checkpoint->best_model_path());
    FAIL() << "a single network loaded an ensemble's checkpoint";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("model.ensemble=3"));
  }
  std::filesystem::remove_all(root);
}

TEST(Ensemble, SizeOutsideItsBoundsNamesTheKey) {
  for (int64_t size : {0, 65}) {
    try {
      ModelOptions().ensemble(size).validate();
      FAIL() << "ensemble " << size << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("model.ensemble"));
    }
  }
}

}  // namespace
}  // namespace j2v
