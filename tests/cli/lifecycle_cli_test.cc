// The model's lifecycle from the command line: a schema inferred from data, fit without
// fields, fine-tuning with model.init_from, start-up overrides, and field importance.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using Result = j2v::testing::CommandResult;

Result run(const std::string& args, const fs::path& dir) { return j2v::testing::run_in_repo(JSON2VEC_BINARY, args, dir); }

class LifecycleModel : public ::testing::Test {
 protected:
  void SetUp() override { dir = j2v::testing::temp_dir("lifecycle"); }
  void TearDown() override { fs::remove_all(dir); }
  std::string quiet(const std::string& runs) const {
    return " --trainer.default_root_dir=" + (dir / runs).string() + " --trainer.enable_progress_bar=false";
  }
  fs::path dir;
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST_F(LifecycleModel, AnInferredSchemaExplainsItselfAndFitsAsWellAsTheHandWrittenOne) {
  auto inferred = run("infer-schema examples/transactions/train.jsonl --target fraud", dir);
  ASSERT_EQ(inferred.code, 0) << inferred.err;
  // Every field with its reason; booleans are booleans, the target is marked.
  EXPECT_NE(inferred.out.find("amount: number  # numbers in 100% of 4000 records"), std::string::npos) << inferred.out;
  EXPECT_NE(inferred.out.find("card_present: boolean  # true/false"), std::string::npos) << inferred.out;
  EXPECT_NE(inferred.out.find("merchant: category  # labels"), std::string::npos) << inferred.out;
  EXPECT_NE(inferred.out.find("target: true"), std::string::npos) << inferred.out;
  EXPECT_NE(inferred.out.find("train: examples/transactions/train.jsonl"), std::string::npos);

  // fit with no fields infers the same and saves them in the run's config.
  std::string data = " --data.train=examples/transactions/train.jsonl --data.test=examples/transactions/test.jsonl";
  auto fit = run("fit" + data + " --model.target=fraud --trainer.max_epochs=4 --trainer.seed=0" + quiet("inferred"), dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  EXPECT_NE(fit.err.find("no model.fields given; inferred 6 fields"), std::string::npos) << fit.err;
  auto saved = j2v::testing::slurp(dir / "inferred" / "version_0" / "config.yaml");
  EXPECT_NE(saved.find("card_present:"), std::string::npos) << saved;
  auto test = run("test --config " + (dir / "inferred" / "version_0" / "config.yaml").string() + " --ckpt_path best", dir);
  ASSERT_EQ(test.code, 0) << test.err;
  double inferred_accuracy = test.last_json().at("record.fraud/test:accuracy:content").get<double>();

  // The hand-written config, same data and budget.
  auto hand = run("fit --config examples/transactions/config.yaml --trainer.max_epochs=4 --trainer.seed=0" + quiet("hand"), dir);
  ASSERT_EQ(hand.code, 0) << hand.err;
  auto hand_test = run("test --config examples/transactions/config.yaml --ckpt_path best" + quiet("hand"), dir);
  ASSERT_EQ(hand_test.code, 0) << hand_test.err;
  double hand_accuracy = hand_test.last_json().at("record.fraud/test:accuracy:content").get<double>();
  EXPECT_GT(inferred_accuracy, 0.9);
  EXPECT_GE(inferred_accuracy, hand_accuracy - 0.01) << "inferred " << inferred_accuracy << " vs hand-written " << hand_accuracy;

  // Mistakes name what to fix.
  auto no_target = run("infer-schema examples/transactions/train.jsonl --target fruad", dir);
  EXPECT_NE(no_target.code, 0);
  EXPECT_NE(no_target.err.find("target 'fruad' is not a field of the records (fields found: amount"), std::string::npos)
      << no_target.err;
  auto no_data = run("fit --model.target=fraud" + quiet("none"), dir);
  EXPECT_NE(no_data.code, 0);
  EXPECT_NE(no_data.err.find("unless data.train is given"), std::string::npos) << no_data.err;
}

TEST_F(LifecycleModel, PretrainThenFineTuneWithInitFromAndOverridesAtStartUp) {
  // Self-supervised: no target, every field masked now and then.
  auto pre = run("fit --data.train=examples/transactions/train.jsonl --trainer.max_epochs=2" + quiet("pre"), dir);
  ASSERT_EQ(pre.code, 0) << pre.err;
  auto pretrained = (dir / "pre" / "version_0" / "checkpoints" / "last.ckpt").string();
  ASSERT_TRUE(fs::exists(pretrained));
  auto fine = run("fit --config examples/transactions/config.yaml --trainer.max_epochs=2 --model.init_from=" + pretrained +
                      quiet("fine"), dir);
  ASSERT_EQ(fine.code, 0) << fine.err;
  // The fields the pretrained model shares, its masked fraud field included (card_present was
  // a boolean there, a number here: learned again).
  EXPECT_NE(fine.err.find("field state kept: 5 (record.amount, record.country, record.fraud, record.hour, "
                          "record.merchant); learned at the next fit: 1 (record.card_present)"),
            std::string::npos) << fine.err;
  auto saved = j2v::testing::slurp(dir / "fine" / "version_0" / "config.yaml");
  EXPECT_NE(saved.find("init_from: " + pretrained), std::string::npos);

  auto unrelated = run("fit --model.fields.height=number --model.fields.species='{type: category, target: true}' "
                       "--data.train=examples/transactions/train.jsonl --model.init_from=" + pretrained + quiet("bad"), dir);
  EXPECT_NE(unrelated.code, 0);
  EXPECT_NE(unrelated.err.find("has no field in common with this model"), std::string::npos) << unrelated.err;

  // predict with the merchant switched off, and a bad override refused by name.
  std::string best = (dir / "fine" / "version_0" / "checkpoints" / "last.ckpt").string();
  std::string predict = "predict --config examples/transactions/config.yaml --ckpt_path " + best +
                        " --prediction_writer.format=jsonl --prediction_writer.path=";
  auto off = run(predict + (dir / "off").string() + " --override record.merchant.active=false", dir);
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_NE(off.err.find("override record.merchant.active=false"), std::string::npos) << off.err;
  auto rows = lines(j2v::testing::slurp(dir / "off" / "rank-0.jsonl"));
  ASSERT_EQ(rows.size(), 200u);
  EXPECT_TRUE(nlohmann::json::parse(rows[0])["predictions"].contains("record.fraud"));
  auto typo = run(predict + (dir / "typo").string() + " --override record.merchnt.active=false", dir);
  EXPECT_NE(typo.code, 0);
  EXPECT_NE(typo.err.find("--override 'record.merchnt.active=false': update: the selector `address == "
                          "\"record.merchnt\"` matches no node"), std::string::npos) << typo.err;
  EXPECT_FALSE(fs::exists(dir / "typo" / "rank-0.jsonl"));
  auto option = run(predict + (dir / "option").string() + " --override record.amount.max_vocab_size=3", dir);
  EXPECT_NE(option.code, 0);
  EXPECT_NE(option.err.find("unknown option 'max_vocab_size'"), std::string::npos) << option.err;
  auto fit_override = run("fit --config examples/transactions/config.yaml --override record.amount.active=false" + quiet("x"), dir);
  EXPECT_NE(fit_override.code, 0);
  EXPECT_NE(fit_override.err.find("--override applies to predict and serve"), std::string::npos) << fit_override.err;
}

// A table whose answer is known: `signal` decides the label, `weak` nudges it, `copy` is a
// copy of `weak`, and `noise` is noise.
void write_known_table(const fs::path& path, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    double signal = u(rng), weak = u(rng), noise = u(rng);
    bool yes = signal + 0.3 * weak > 0.65;
    out << nlohmann::json{{"signal", signal}, {"weak", weak}, {"copy", weak}, {"noise", noise}, {"label", yes ? "yes" : "no"}}
               .dump()
        << "\n";
  }
}

TEST_F(LifecycleModel, ImportanceFindsTheFieldThatCarriesTheSignal) {
  write_known_table(dir / "train.jsonl", 3000, 1);
  write_known_table(dir / "test.jsonl", 1000, 2);
  std::ofstream(dir / "run.yaml") << "model:\n  fields:\n    signal: number\n    weak: number\n    copy: number\n"
                                     "    noise: number\n    label: {type: category, target: true}\n"
                                  << "data:\n  train: " << (dir / "train.jsonl").string()
                                  << "\n  test: " << (dir / "test.jsonl").string() << "\n";
  std::string config = " --config " + (dir / "run.yaml").string();
  auto fit = run("fit" + config + " --trainer.max_epochs=12 --trainer.seed=0" + quiet("runs"), dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  auto importance = run("importance" + config + quiet("runs") + " --ckpt_path best --output " +
                            (dir / "importance").string(), dir);
  ASSERT_EQ(importance.code, 0) << importance.err;
  auto csv = lines(j2v::testing::slurp(dir / "importance" / "importance.csv"));
  ASSERT_EQ(csv.size(), 6u) << importance.out;  // header, the full model, four inputs
  EXPECT_EQ(csv[0].rfind("node,type,loss_increase,", 0), 0u) << csv[0];
  std::map<std::string, double> increase;
  std::vector<std::string> order;
  for (size_t i = 2; i < csv.size(); ++i) {
    auto a = csv[i].find(','), b = csv[i].find(',', a + 1), c = csv[i].find(',', b + 1);
    std::string node = csv[i].substr(0, a);
    order.push_back(node);
    increase[node] = std::stod(csv[i].substr(b + 1, c - b - 1));
  }
  EXPECT_EQ(order[0], "record.signal") << importance.out;
  EXPECT_GT(increase["record.signal"], 0.2) << importance.out;
  // The copies cover for each other, so each alone costs little; noise comes last and costs
  // next to nothing. Not exactly nothing: switching a field off removes a token the model saw
  // in every training record (p_prune 0), which moves the others' attention a little (a loss
  // increase of 0.004-0.038 over seeds 0-2 with numbers' default piecewise embedding).
  EXPECT_LT(increase["record.weak"], increase["record.signal"] / 4) << importance.out;
  EXPECT_LT(increase["record.copy"], increase["record.signal"] / 4) << importance.out;
  EXPECT_LT(std::abs(increase["record.noise"]), 0.05) << importance.out;
  // Noise ranks below the signal and below whichever copy the model leaned on; the other copy,
  // covered by its twin, may cost as little as noise (0.011 against 0.013 with the linear term).
  EXPECT_NE(order[1], "record.noise") << importance.out;
  EXPECT_LT(increase["record.noise"], std::max(increase["record.weak"], increase["record.copy"])) << importance.out;
  auto svg = j2v::testing::slurp(dir / "importance" / "importance.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("record.signal"), std::string::npos);
  EXPECT_NE(importance.out.find("record.signal"), std::string::npos) << "a printed table";
}

}  // namespace
