// Each datatype learns what it is for, end to end on synthetic records with a known rule,
// against a stated bound.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <random>

#include "data/table_data_module.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "model/quiet_trainer.h"
#include "test_util.h"

namespace j2v {
namespace {

engine::TrainerOptions quiet(const std::filesystem::path& root, int epochs) {
  return testing::quiet_trainer(root, epochs);
}

std::map<std::string, double> fit_and_test(Model model, const std::vector<std::string>& train,
                                           const std::vector<std::string>& test, int epochs) {
  TableDataModule data(model.codec(), {.train = train, .test = test}, TableDataOptions().batch_size(64));
  auto root = testing::temp_dir("datatypes");
  engine::Trainer trainer(quiet(root, epochs));
  trainer.fit(model, data);
  auto metrics = trainer.test(model, data);
  std::filesystem::remove_all(root);
  return metrics;
}

// Six transactions per record, account ids drawn from a billion; `repeat` says whether an
// account occurs twice. Ids never recur across records, so only "same or different within
// the record" carries the signal.
std::vector<std::string> transactions(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    std::vector<uint64_t> ids(6);
    for (auto& id : ids) id = rng() % 1000000000;
    bool repeat = rng() % 2 == 0;
    if (repeat) ids[rng() % 6] = ids[rng() % 6];
    repeat = false;
    for (int a = 0; a < 6; ++a)
      for (int b = a + 1; b < 6; ++b) repeat = repeat || ids[a] == ids[b];
    std::string row = R"({"tx": [)";
    for (int k = 0; k < 6; ++k) row += fmt::format(R"({}{{"account": "acct-{}"}})", k ? "," : "", ids[k]);
    rows.push_back(row + fmt::format(R"(], "repeat": "{}"}})", repeat ? "yes" : "no"));
  }
  return rows;
}

TEST(EntityModel, LearnsSameOrDifferentWithinARecord) {
  auto options = ModelOptions().d_model(32).n_layers(1);
  auto schema = [&](FieldSpec account) {
    return Model::from_schema({Branch("tx", {account}).length(6), Category("repeat").target()}, options);
  };
  auto train = transactions(3000, 1), test = transactions(500, 2);
  double entity = fit_and_test(schema(Entity("account")), train, test, 8).at("record.repeat/test:accuracy:content");
  double category = fit_and_test(schema(Category("account")), train, test, 8).at("record.repeat/test:accuracy:content");
  std::cout << "repeat account: entity accuracy " << entity << ", category " << category << std::endl;
  EXPECT_GT(entity, 0.9);
  EXPECT_GT(entity, category + 0.2);
}

// Notes of filler words; `refund` = the note asks for a refund in some inflection.
std::vector<std::string> notes(int n, uint64_t seed, const std::vector<std::string>& refund_words) {
  static const std::vector<std::string> filler = {"order", "late",   "box",    "thanks", "delivery", "item",
                                                  "please", "broken", "color",  "size",   "wrong",    "arrived",
                                                  "today",  "happy",  "quick",  "call",   "me",       "about"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    bool refund = rng() % 2 == 0;
    std::vector<std::string> words;
    int length = 3 + static_cast<int>(rng() % 6);
    for (int k = 0; k < length; ++k) words.push_back(filler[rng() % filler.size()]);
    if (refund) words[rng() % words.size()] = refund_words[rng() % refund_words.size()];
    if (rng() % 2) words[0][0] = static_cast<char>(std::toupper(words[0][0]));
    rows.push_back(nlohmann::json{{"note", fmt::format("{}", fmt::join(words, " "))}, {"refund", refund}}.dump());
  }
  return rows;
}

TEST(TextModel, LearnsWordsAndRecognisesAnUnseenInflection) {
  auto model = Model::from_schema({Text("note"), Boolean("refund").target()},
                                  ModelOptions().d_model(32).n_layers(1));
  auto train = notes(3000, 1, {"refund", "refunds", "refunded"});
  double seen = fit_and_test(model, train, notes(500, 2, {"refund", "refunds", "refunded"}), 6)
                    .at("record.refund/test:accuracy:content");
  // "refunding" never occurs in training: only its character trigrams tie it to "refund".
  auto unseen_rows = notes(500, 3, {"refunding"});
  auto predictions = model.predict(unseen_rows);
  int right = 0;
  for (size_t i = 0; i < unseen_rows.size(); ++i)
    right += predictions[i]["predictions"]["record.refund"]["content"]["value"] ==
             nlohmann::json::parse(unseen_rows[i])["refund"];
  double unseen = right / static_cast<double>(unseen_rows.size());
  std::cout << "text: accuracy " << seen << " on seen words, " << unseen << " with an unseen inflection" << std::endl;
  EXPECT_GT(seen, 0.95);
  EXPECT_GT(unseen, 0.75);
}

// Tags follow from a colour and from the weekday of a timestamp: a set target, a dateparts input.
std::vector<std::string> tagged(int n, uint64_t seed) {
  static const char* colours[] = {"red", "green", "blue", "black"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    int day = 1 + static_cast<int>(rng() % 28), hour = static_cast<int>(rng() % 24);
    int colour = static_cast<int>(rng() % 4);
    // March 2024 starts on a Friday: days 2, 3, 9, 10, ... are weekends.
    int weekday = (4 + day - 1) % 7;  // 0 = Monday
    nlohmann::json tags = nlohmann::json::array();
    if (weekday >= 5) tags.push_back("weekend");
    if (colour < 2) tags.push_back("warm");
    if (colour == 3) tags.push_back("dark");
    rows.push_back(nlohmann::json{{"when", fmt::format("2024-03-{:02d}T{:02d}:00:00", day, hour)},
                                  {"colour", colours[colour]},
                                  {"tags", tags}}
                       .dump());
  }
  return rows;
}

TEST(SetModel, PredictsLabelSetsFromACategoryAndADate) {
  auto model = Model::from_schema({DateParts("when").parts({"day_of_week", "hour_of_day"}), Category("colour"),
                                   Set("tags").target()},
                                  ModelOptions().d_model(32).n_layers(1));
  auto metrics = fit_and_test(model, tagged(3000, 1), tagged(500, 2), 8);
  std::cout << "set: f1 " << metrics.at("record.tags/test:f1:content") << ", exact match "
            << metrics.at("record.tags/test:exact_match:content") << std::endl;
  EXPECT_GT(metrics.at("record.tags/test:f1:content"), 0.95);
  EXPECT_GT(metrics.at("record.tags/test:exact_match:content"), 0.9);
  auto p = model.predict({R"({"when": "2024-03-09T10:00:00", "colour": "black"})"})[0]["predictions"]["record.tags"];
  EXPECT_EQ(p["content"]["labels"], (nlohmann::json{"dark", "weekend"})) << p.dump();
}

// v = (a + b, a - b); big = a + b > 0.
std::vector<std::string> vectors(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    double a = normal(rng), b = normal(rng);
    rows.push_back(nlohmann::json{{"a", a}, {"b", b}, {"v", {a + b, a - b}}, {"big", a + b > 0}}.dump());
  }
  return rows;
}

TEST(VectorModel, AVectorTargetAndABooleanTarget) {
  auto model = Model::from_schema({Number("a"), Number("b"), Vector("v", 2).target(), Boolean("big").target()},
                                  ModelOptions().d_model(32).n_layers(1));
  auto metrics = fit_and_test(model, vectors(3000, 1), vectors(500, 2), 12);
  double rmse = metrics.at("record.v/test:rmse:content"), auc = metrics.at("record.big/test:auc:content");
  std::cout << "vector: rmse " << rmse << " (each element's std is 1.41); boolean auc " << auc << std::endl;
  EXPECT_LT(rmse, 0.35);
  EXPECT_GT(auc, 0.97);
  auto v = model.predict({R"({"a": 1.0, "b": 0.5})"})[0]["predictions"]["record.v"]["content"]["value"];
  ASSERT_EQ(v.size(), 2u);
  EXPECT_NEAR(v[0].get<double>(), 1.5, 0.5);
  EXPECT_NEAR(v[1].get<double>(), 0.5, 0.5);
}

// y = e^(2x) times a little noise: it spans three orders of magnitude, as prices do.
std::vector<std::string> skewed(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> x(0, 3.5);
  std::normal_distribution<double> noise(0, 0.05);
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    double v = x(rng);
    rows.push_back(nlohmann::json{{"x", v}, {"y", std::exp(2 * v + noise(rng))}}.dump());
  }
  return rows;
}

// transform: log trains on sign(y)·ln(1+|y|), yet its metrics and predictions are in y's own
// units. Small values are then fitted in proportion; squared error on raw y spends the model
// on the large ones (and wins on raw RMSE, which the large ones dominate).
TEST(NumberModel, LogScaleLearnsASkewedTargetInItsOwnUnits) {
  auto train = skewed(4000, 1), test = skewed(400, 2);
  auto run = [&](const std::string& transform) {
    auto model = Model::from_schema({Number("x"), Number("y").transform(transform).target()},
                                    ModelOptions().d_model(32).n_layers(1));
    double reported = fit_and_test(model, train, test, 12).at("record.y/test:rmse:content");
    std::vector<std::string> asked;
    for (const auto& row : test) {
      auto r = nlohmann::json::parse(row);
      r.erase("y");
      asked.push_back(r.dump());
    }
    auto predictions = model.predict(asked);
    double sq = 0;
    std::vector<double> relative_small;  // for y under 10, a hundredth of the largest
    for (size_t i = 0; i < test.size(); ++i) {
      double truth = nlohmann::json::parse(test[i])["y"].get<double>();
      double y = predictions[i]["predictions"]["record.y"]["content"]["value"].get<double>();
      sq += (y - truth) * (y - truth);
      if (truth < 10) relative_small.push_back(std::abs(y - truth) / truth);
    }
    std::sort(relative_small.begin(), relative_small.end());
    double rmse = std::sqrt(sq / static_cast<double>(test.size()));
    double median_small = relative_small[relative_small.size() / 2];
    std::cout << transform << ": rmse " << rmse << " (reported " << reported << "), median relative error under 10 "
              << median_small << std::endl;
    EXPECT_NEAR(reported, rmse, 0.01 * rmse) << "the metric is in y's units, as the predictions are";
    return median_small;
  };
  double log_error = run("log"), plain_error = run("none");
  EXPECT_LT(log_error, 0.15);
  EXPECT_LT(log_error, 0.5 * plain_error);
  EXPECT_THROW(Model::from_schema({Number("x"), Number("y").transform("sqrt").target()}, ModelOptions()), SchemaError);
}

// Arithmetic sequences x_j = start + j * step: the last item follows from the ones before.
std::vector<std::string> sequences(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> start(-5, 5), step(-2, 2);
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) {
    double s = start(rng), d = step(rng);
    int length = 4 + static_cast<int>(rng() % 5);
    nlohmann::json items = nlohmann::json::array();
    for (int j = 0; j < length; ++j) items.push_back({{"x", s + j * d}});
    rows.push_back(nlohmann::json{{"seq", items}}.dump());
  }
  return rows;
}

TEST(BranchMaskModel, ReconstructsTheHiddenLastItemOfASequence) {
  // No target at all: hiding each sequence's last item in training is the whole task.
  auto model = Model::from_schema(
      {Branch("seq", {Number("x")}).length(8).n_layers(2).mask(Mask().count(1).window("end"))},
      ModelOptions().d_model(32).n_layers(1));
  fit_and_test(model, sequences(4000, 1), sequences(200, 2), 10);
  auto test = sequences(300, 3);
  std::vector<std::string> asked;
  std::vector<double> truth;
  for (const auto& row : test) {
    auto r = nlohmann::json::parse(row);
    truth.push_back(r["seq"].back()["x"].get<double>());
    r["seq"].back()["x"] = "<MASK>";
    asked.push_back(r.dump());
  }
  auto predictions = model.predict(asked);
  double sq = 0, baseline = 0, mean = 0;
  for (double t : truth) mean += t / static_cast<double>(truth.size());
  for (size_t i = 0; i < truth.size(); ++i) {
    const auto& cells = predictions[i]["predictions"]["record.seq.x"];
    double x = cells.back()["content"]["value"].get<double>();
    sq += (x - truth[i]) * (x - truth[i]);
    baseline += (mean - truth[i]) * (mean - truth[i]);
    EXPECT_TRUE(cells.front().is_null()) << "only the masked cell is decoded";
  }
  double rmse = std::sqrt(sq / truth.size()), baseline_rmse = std::sqrt(baseline / truth.size());
  std::cout << "masked last item: rmse " << rmse << " vs " << baseline_rmse << " predicting the mean" << std::endl;
  EXPECT_LT(rmse, 0.35 * baseline_rmse);
}

// 600 accounts, each risky or not for good; a record names its account and a noise amount.
// An account recurs across records (five times in training), so a model that tells accounts
// apart learns each one's risk. 600 ids are more than a 256-label vocabulary holds.
std::vector<std::string> account_records(int per_account, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> rows;
  for (int round = 0; round < per_account; ++round)
    for (int account = 0; account < 600; ++account) {
      bool risky = (account * 2654435761u) % 10 < 3;  // fixed per account
      rows.push_back(nlohmann::json{{"account", fmt::format("acct-{}", account)},
                                    {"amount", static_cast<double>(rng() % 1000)},
                                    {"risky", risky ? "yes" : "no"}}
                         .dump());
    }
  std::shuffle(rows.begin(), rows.end(), rng);
  return rows;
}

TEST(HashModel, TellsUnboundedIdentifiersApartWhereAVocabularyRunsOut) {
  auto train = account_records(5, 1), test = account_records(1, 2);
  auto hashed = fit_and_test(Model::from_schema({Hash("account"), Number("amount"), Category("risky").target()},
                                                ModelOptions().d_model(32).n_layers(1)),
                             train, test, 30);
  auto vocabulary = fit_and_test(Model::from_schema({Category("account"), Number("amount"), Category("risky").target()},
                                                    ModelOptions().d_model(32).n_layers(1)),
                                 train, test, 30);
  double with_hash = hashed.at("record.risky/test:accuracy:content");
  double with_category = vocabulary.at("record.risky/test:accuracy:content");
  EXPECT_GT(with_hash, 0.95);
  EXPECT_GT(with_hash, with_category + 0.1) << "category (256 labels): " << with_category;
}

}  // namespace
}  // namespace j2v
