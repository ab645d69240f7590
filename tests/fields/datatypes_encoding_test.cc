// The stated encoding rules of each datatype: what a value becomes, which values are
// "other", which are errors (naming file, line and field), and the schema errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "base/errors.h"
#include "data/record_encoder.h"
#include "encoded_fields.h"
#include "fields/registry.h"

namespace j2v {
namespace {

constexpr uint8_t kValued = 0, kNull = 1, kPadded = 2, kMasked = 3, kOther = 4;

using testing::Encoded;

// Fits on `records` (or `train`) and encodes `records`.
Encoded encode(const std::string& fields_json, const std::vector<std::string>& records,
               const std::vector<std::string>& train = {}) {
  auto fields = nlohmann::json::parse(fields_json);
  fields["label"] = {{"type", "number"}, {"target", true}};  // a schema must have something to learn
  Schema s = Schema::from_fields_json("r", fields);
  Encoded out;
  SchemaTree tree;
  out.fields = build_fields(s, &tree);
  RecordEncoder encoder(out.fields, tree);
  auto buffer = RecordBuffer::from_strings(records, "data.jsonl");
  auto fit_on = train.empty() ? buffer : RecordBuffer::from_strings(train, "train.jsonl");
  auto stats = encoder.collect_stats(*fit_on, nullptr, 1);
  for (size_t f = 0; f < out.fields.size(); ++f) out.fields[f]->fit(*stats[f]);
  out.table = encoder.encode(buffer, nullptr, 1);
  return out;
}

std::string error_of(const std::string& fields_json, const std::vector<std::string>& records,
                     const std::vector<std::string>& train = {}) {
  try {
    encode(fields_json, records, train);
  } catch (const DataError& e) {
    return e.what();
  } catch (const SchemaError& e) {
    return std::string("schema: ") + e.what();
  }
  return "";
}

std::vector<int64_t> indices(const Column& c, size_t row) {
  return {c.indices.begin() + row * c.width, c.indices.begin() + (row + 1) * c.width};
}

TEST(BooleanEncoding, StatedRules) {
  auto e = encode(R"({"b": "boolean"})", {R"({"b": true})", R"({"b": false})", R"({"b": 1})", R"({"b": "No"})",
                                          R"({"b": " yes "})", R"({"b": 2})", R"({"b": "maybe"})", R"({"b": null})",
                                          R"({"b": "<MASK>"})"});
  const auto& c = e.column("b");
  std::vector<uint8_t> states = {kValued, kValued, kValued, kValued, kValued, kOther, kOther, kNull, kMasked};
  EXPECT_EQ(c.state, states);
  EXPECT_EQ(std::vector<float>(c.values.begin(), c.values.begin() + 5), (std::vector<float>{1, 0, 1, 0, 1}));
  EXPECT_EQ(error_of(R"({"b": "boolean"})", {R"({"b": true})", R"({"b": {"x": 1}})"}),
            "data.jsonl:2: field 'r.b' is an object, but the field is a boolean");
}

TEST(SetEncoding, ListsLoneLabelsEmptySetsAndTheUnavailableBucket) {
  std::vector<std::string> train = {R"({"s": ["a", "b"]})", R"({"s": ["a"]})", R"({"s": "c"})"};
  auto e = encode(R"({"s": {"type": "set", "max_size": 3}})",
                  {R"({"s": ["b", "a", "b"]})", R"({"s": "c"})", R"({"s": []})", R"({"s": ["zzz", null, "a"]})",
                   R"({"s": ["a", "b", "c", "zzz"]})", R"({})", R"({"s": [1, true]})"},
                  train);
  const auto& c = e.column("s");
  ASSERT_EQ(c.width, 3);
  // vocabulary by frequency: a (2), then b, c (1 each, by label): a=2, b=3, c=4; unseen = 1
  EXPECT_EQ(indices(c, 0), (std::vector<int64_t>{3, 2, 0}));  // repeated labels count once
  EXPECT_EQ(indices(c, 1), (std::vector<int64_t>{4, 0, 0}));  // a lone label is a one-element set
  EXPECT_EQ(c.state[2], kValued);                              // an empty set is a value
  EXPECT_EQ(indices(c, 2), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(indices(c, 3), (std::vector<int64_t>{1, 2, 0}));  // unseen -> 1; nulls skipped
  EXPECT_EQ(indices(c, 4), (std::vector<int64_t>{2, 3, 4}));  // past max_size: dropped
  EXPECT_EQ(c.state[5], kNull);
  EXPECT_EQ(indices(c, 6), (std::vector<int64_t>{1, 0, 0}));  // "1", "true": labels, both unseen (one bucket)
  EXPECT_EQ(error_of(R"({"s": "set"})", {R"({"s": ["a", ["b"]]})"}),
            "data.jsonl:1: field 'r.s' element 2 is an array, but a set holds labels (strings, numbers, booleans)");
}

TEST(VectorEncoding, ExactLengthNormalisedAndClearErrors) {
  auto e = encode(R"({"v": {"type": "vector", "n_dim": 2}})",
                  {R"({"v": [1, 10]})", R"({"v": [3, 30]})", R"({"v": "n/a"})", R"({"v": null})"});
  const auto& c = e.column("v");
  ASSERT_EQ(c.width, 2);
  // mean (2, 20), sample std (1.414, 14.14): both dimensions -> -0.707 and +0.707
  EXPECT_NEAR(c.values[0], -0.7071, 1e-3);
  EXPECT_NEAR(c.values[1], -0.7071, 1e-3);
  EXPECT_NEAR(c.values[2], 0.7071, 1e-3);
  EXPECT_EQ(c.state[2], kOther);
  EXPECT_EQ(c.state[3], kNull);
  EXPECT_EQ(error_of(R"({"v": {"type": "vector", "n_dim": 3}})", {R"({"v": [1, 2, 3]})", R"({"v": [1, 2]})"}),
            "data.jsonl:2: field 'r.v' has 2 elements, but the field is a vector of n_dim 3 numbers");
  EXPECT_EQ(error_of(R"({"v": {"type": "vector", "n_dim": 2}})", {R"({"v": [1, "2"]})"}),
            "data.jsonl:1: field 'r.v' element 2 is a string, but a vector holds numbers");
  EXPECT_EQ(error_of(R"({"v": "vector"})", {R"({})"}),
            "schema: field 'v': a vector needs option 'n_dim' (its number of elements)");
}

TEST(DatePartsEncoding, IsoStringsUnixTimesAndPatterns) {
  const std::string all = R"(["day_of_year", "week_of_year", "month_of_year", "day_of_month", "week_of_month",
                              "day_of_week", "hour_of_day", "minute_of_hour"])";
  auto e = encode(R"({"t": {"type": "dateparts", "parts": )" + all + "}}",
                  {R"({"t": "2024-03-05T14:30:00+02:00"})", R"({"t": 0})", R"({"t": "2024-12-31"})",
                   R"({"t": "2024-02-30"})", R"({"t": "yesterday"})", R"({"t": "2023-06-18 23:59:59.250Z"})"});
  const auto& c = e.column("t");
  ASSERT_EQ(c.width, 8);
  // 2024-03-05 (a Tuesday) 14:30, as written: class = value - first (1-based parts minus 1).
  EXPECT_EQ(indices(c, 0), (std::vector<int64_t>{64, 9, 2, 4, 0, 1, 14, 30}));
  // Unix time 0: Thursday 1970-01-01 00:00 UTC
  EXPECT_EQ(indices(c, 1), (std::vector<int64_t>{0, 0, 0, 0, 0, 3, 0, 0}));
  EXPECT_EQ(indices(c, 2)[0], 365);  // day 366 of a leap year
  EXPECT_EQ(indices(c, 2)[5], 1);    // Tuesday
  EXPECT_EQ(c.state[3], kOther);     // no 30 February
  EXPECT_EQ(c.state[4], kOther);
  EXPECT_EQ(indices(c, 5)[5], 6);  // Sunday
  EXPECT_EQ(indices(c, 5)[6], 23);

  auto utc = encode(R"({"t": {"type": "dateparts", "parts": ["day_of_month", "hour_of_day"], "utc": true}})",
                    {R"({"t": "2024-03-05T01:30:00+02:00"})"});
  EXPECT_EQ(indices(utc.column("t"), 0), (std::vector<int64_t>{3, 23}));  // 4 March, 23:30 UTC
  auto ms = encode(R"({"t": {"type": "dateparts", "parts": ["hour_of_day"], "unit": "ms"}})", {R"({"t": 7200000})"});
  EXPECT_EQ(indices(ms.column("t"), 0), (std::vector<int64_t>{2}));
  auto pattern = encode(R"({"t": {"type": "dateparts", "parts": ["month_of_year", "hour_of_day"], "format": "%d/%m/%Y %H:%M"}})",
                        {R"({"t": "25/12/2023 18:05"})", R"({"t": "2023-12-25"})"});
  EXPECT_EQ(indices(pattern.column("t"), 0), (std::vector<int64_t>{11, 18}));
  EXPECT_EQ(pattern.column("t").state[1], kOther);
  EXPECT_EQ(error_of(R"({"t": "dateparts"})", {R"({"t": true})"}),
            "data.jsonl:1: field 'r.t' is a boolean, but the field is a date (a string or Unix time)");
  auto month = encode(R"({"t": {"type": "dateparts", "parts": ["month_of_year", "day_of_month", "hour_of_day"], "format": "%Y-%m %z", "utc": true}})",
                      {R"({"t": "2023-07 +0200"})"});
  // no day in the pattern: the 1st; %z read, so utc moves 1 July 00:00 +02:00 to 30 June 22:00
  EXPECT_EQ(indices(month.column("t"), 0), (std::vector<int64_t>{5, 29, 22}));
  EXPECT_NE(error_of(R"({"t": {"type": "dateparts", "parts": ["hour_of_day", "hour_of_day"]}})", {R"({})"})
                .find("date part \"hour_of_day\" is listed twice"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"t": {"type": "dateparts", "parts": ["hour"]}})", {R"({})"})
                .find("unknown date part \"hour\" (allowed: day_of_year, week_of_year, month_of_year"),
            std::string::npos);
}

TEST(EntityEncoding, ReindexedPerRecordByFirstAppearance) {
  auto e = encode(R"({"items": {"type": "branch", "length": 6, "fields": {"seller": {"type": "entity", "max_entities": 2}}}})",
                  {R"({"items": [{"seller": "x"}, {"seller": "y"}, {"seller": "x"}, {"seller": null}, {"seller": "z"}]})",
                   R"({"items": [{"seller": 7}, {"seller": "x"}, {"seller": 7}]})"});
  const auto& c = e.column("seller");
  ASSERT_EQ(c.slots, 6);
  EXPECT_EQ(std::vector<int64_t>(c.indices.begin(), c.indices.begin() + 3), (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(c.state[3], kNull);
  EXPECT_EQ(c.indices[4], 0);  // a third distinct seller, past max_entities: "another"
  EXPECT_EQ(c.state[5], kPadded);
  // The next record starts over: its first seller is entity 1 again.
  EXPECT_EQ(std::vector<int64_t>(c.indices.begin() + 6, c.indices.begin() + 9), (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(error_of(R"({"e": "entity"})", {R"({"e": [1]})"}),
            "data.jsonl:1: field 'r.e' is an array, but the field is an entity");
}

TEST(TextEncoding, HashedWordsThenTrigramsCaseInsensitive) {
  auto e = encode(R"({"note": {"type": "text", "max_features": 12, "buckets": 1024}})",
                  {R"({"note": "Refund please"})", R"({"note": "refund, PLEASE!"})", R"({"note": ""})",
                   R"({"note": "refunded"})", R"({"note": 42})"});
  const auto& c = e.column("note");
  auto a = indices(c, 0), b = indices(c, 1);
  EXPECT_EQ(a, b);  // case and punctuation do not matter
  for (int64_t i = 0; i < 12; ++i) EXPECT_GT(a[i], 0);  // 2 words + 6 + 6 trigrams, cut at 12
  EXPECT_NE(a[0], a[1]);
  EXPECT_EQ(c.state[2], kValued);
  EXPECT_EQ(indices(c, 2), std::vector<int64_t>(12, 0));
  // "refunded" shares the trigrams <re, ref, efu, fun, und with "refund".
  auto r = indices(c, 3);
  int shared = 0;
  for (int64_t i = 1; i < 12; ++i)
    if (r[i] > 0 && std::find(a.begin() + 2, a.end(), r[i]) != a.end()) ++shared;
  EXPECT_GE(shared, 5);
  EXPECT_GT(indices(c, 4)[0], 0);  // a number is text as written
  EXPECT_NE(error_of(R"({"x": "number", "note": {"type": "text", "target": true}})", {R"({})"})
                .find("field 'note': a text field cannot be a target"),
            std::string::npos);
}

TEST(HashEncoding, EqualValuesShareBucketsWithoutAVocabulary) {
  auto e = encode(R"({"account": {"type": "hash", "buckets": 4096, "num_hashes": 3}})",
                  {R"({"account": "acct-17"})", R"({"account": "acct-18"})", R"({"account": "acct-17"})",
                   R"({"account": 1234})", R"({"account": "1234"})", R"({"account": null})"},
                  {R"({"account": "something else"})"});  // nothing is fitted: unseen values hash all the same
  const auto& c = e.column("account");
  ASSERT_EQ(c.width, 3);
  EXPECT_EQ(indices(c, 0), indices(c, 2));
  EXPECT_NE(indices(c, 0), indices(c, 1));
  EXPECT_EQ(indices(c, 3), indices(c, 4)) << "a number is its text";
  auto a = indices(c, 0);
  EXPECT_FALSE(a[0] == a[1] && a[1] == a[2]) << "independent hash functions";
  for (int64_t i : a) EXPECT_TRUE(i >= 0 && i < 4096);
  EXPECT_EQ(c.state[5], kNull);
  EXPECT_NE(error_of(R"({"account": "hash"})", {R"({"account": {"id": 1}})"}).find("but the field is a hash"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"x": "number", "account": {"type": "hash", "target": true}})", {R"({})"})
                .find("a hash field cannot be a target"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"account": {"type": "hash", "num_hashes": 0}})", {R"({})"}).find("num_hashes"),
            std::string::npos);
}

TEST(BranchMaskOption, BadValuesNameTheKeyAndTheRule) {
  auto schema = [](const std::string& mask) {
    return R"({"items": {"type": "branch", "length": 4, "mask": )" + mask + R"(, "fields": {"x": "number"}}})";
  };
  EXPECT_EQ(error_of(schema(R"({"rate": 0.2})"), {R"({})"}), "");
  EXPECT_EQ(error_of(schema(R"({"count": 1, "window": "end", "p": 0.5})"), {R"({})"}), "");
  EXPECT_NE(error_of(schema(R"({"rate": 0.2, "count": 1})"), {R"({})"}).find("needs exactly one of rate and count"),
            std::string::npos);
  EXPECT_NE(error_of(schema(R"({"count": 5})"), {R"({})"}).find("needs count an integer in [1, length]"),
            std::string::npos);
  EXPECT_NE(error_of(schema(R"({"rate": 0.2, "windw": "end"})"), {R"({})"}).find("unknown key 'windw' (allowed: rate, count, window, p)"),
            std::string::npos);
  EXPECT_NE(error_of(schema(R"({"count": 1, "window": "middle"})"), {R"({})"}).find("window one of random, start, end"),
            std::string::npos);
}

TEST(NumberEncoding, AHugeValueDoesNotTurnTheFieldIntoNaN) {
  auto e = encode(R"({"x": "number", "v": {"type": "vector", "n_dim": 1}})",
                  {R"({"x": 1e300, "v": [1e300]})", R"({"x": -1e300, "v": [-1e300]})", R"({"x": 1, "v": [1]})"});
  for (const char* name : {"x", "v"})
    for (float v : e.column(name).values) EXPECT_TRUE(std::isfinite(v)) << name;
}

TEST(NumberEncoding, QuantilePositionsFollowTheTrainingDistribution) {
  // 0..99 and a heavy tail: 1e6 is an outlier to the z-score but just the top rank here.
  std::vector<std::string> train;
  for (int i = 0; i <= 99; ++i) train.push_back(fmt::format(R"({{"x": {}}})", i));
  train.push_back(R"({"x": 1000000})");
  auto e = encode(R"({"x": {"type": "number", "n_bins": 4}})",
                  {R"({"x": -5})", R"({"x": 0})", R"({"x": 25.5})", R"({"x": 50})", R"({"x": 99})", R"({"x": 5e6})",
                   R"({"x": null})"},
                  train);
  const auto& c = e.column("x");
  ASSERT_EQ(c.width, 2);
  auto position = [&](size_t row) { return c.values[row * 2 + 1]; };
  auto knots = e.field("x").state_json().at("quantiles").get<std::vector<double>>();
  EXPECT_EQ(knots, (std::vector<double>{0, 25, 50, 75, 1000000}));  // 0, 1/4, ..., 1 quantiles
  EXPECT_EQ(position(0), 0.0f);  // below the smallest
  EXPECT_EQ(position(1), 0.0f);
  EXPECT_NEAR(position(2), (1 + 0.5 / 25) / 4, 1e-6);  // linear between knots 25 and 50
  EXPECT_NEAR(position(3), 0.5, 1e-6);
  EXPECT_NEAR(position(4), 0.75 + (99 - 75.0) / (1000000 - 75.0) / 4, 1e-6);
  EXPECT_EQ(position(5), 1.0f);  // above the largest
  EXPECT_EQ(position(6), 0.0f);  // null: nothing written
  for (size_t row = 0; row + 1 < 6; ++row) EXPECT_LE(position(row), position(row + 1));

  // The knots are the field's state: saved and loaded with it, bad ones refused.
  auto state = e.field("x").state_json();
  e.field("x").load_state_json(state);
  EXPECT_EQ(e.field("x").state_json(), state);
  state["quantiles"] = {3, 2};
  EXPECT_THROW(e.field("x").load_state_json(state), std::invalid_argument);
}

TEST(NumberEncoding, RepeatedValuesAreOneKnotAndOptionsAreChecked) {
  std::vector<std::string> train;
  for (int i = 0; i < 90; ++i) train.push_back(R"({"x": 0})");
  for (int i = 0; i < 10; ++i) train.push_back(R"({"x": 7})");
  auto e = encode(R"({"x": "number"})", {R"({"x": 0})", R"({"x": 7})"}, train);
  EXPECT_EQ(e.field("x").state_json().at("quantiles").get<std::vector<double>>(), (std::vector<double>{0, 7}));
  EXPECT_EQ(e.column("x").values[1], 0.0f);
  EXPECT_EQ(e.column("x").values[3], 1.0f);
  EXPECT_NE(error_of(R"({"x": {"type": "number", "embedding": "splines"}})", {R"({})"})
                .find("option 'embedding' must be one of periodic, piecewise, both"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"x": {"type": "number", "n_bins": 1}})", {R"({})"}).find("option 'n_bins'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"x": {"type": "number", "linear_term": "yes"}})", {R"({})"})
                .find("option 'linear_term' must be true or false"),
            std::string::npos);
}

// Stats merge chunk by chunk when data is streamed: a small last chunk of large values (2% of
// the data) moves only the top knot, not the 15/16 quantile as it would if it took as many
// places in the merged sample as it has values.
TEST(NumberEncoding, MergedStatsWeighEachChunkByItsCount) {
  Schema schema = Schema::from_fields_json("r", nlohmann::json::parse(R"({"x": "number", "y": {"type": "category",
      "target": true}})"));
  auto fields = build_fields(schema);
  auto merged = fields[0]->new_stats();
  auto earlier = fields[0]->new_stats(), last = fields[0]->new_stats();
  for (int i = 0; i < 100000; ++i) earlier->observe(Scalar::of(i / 100000.0));
  for (int i = 0; i < 2000; ++i) last->observe(Scalar::of(1000.0));
  merged->merge(*earlier);
  merged->merge(*last);
  fields[0]->fit(*merged);
  auto knots = fields[0]->state_json().at("quantiles").get<std::vector<double>>();
  ASSERT_EQ(knots.size(), 17u);
  EXPECT_EQ(knots.back(), 1000.0);
  EXPECT_NEAR(knots[15], 15.0 / 16.0 / 0.98, 0.02);  // the 15/16 quantile lies among the earlier values
  EXPECT_NEAR(knots[8], 0.5 / 0.98, 0.02);
}

// Quantile knots come from a checkpoint's field state: knots out of order, or not numbers,
// are refused with what is wrong rather than encoding positions from them.
TEST(NumberEncoding, SavedQuantilesMustBeIncreasingNumbers) {
  Schema schema = Schema::from_fields_json("r", nlohmann::json::parse(R"({"x": "number", "y": {"type": "category",
      "target": true}})"));
  auto fields = build_fields(schema);
  auto error_loading = [&](const nlohmann::json& quantiles) -> std::string {
    try {
      fields[0]->load_state_json({{"mean", 0.0}, {"std", 1.0}, {"quantiles", quantiles}});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_loading({0.0, 2.0, 1.0}), "number state: 'quantiles' must be finite and increasing");
  EXPECT_EQ(error_loading({0.0, 0.0}), "number state: 'quantiles' must be finite and increasing");
  EXPECT_EQ(error_loading({0.0, "1"}), "number state: 'quantiles' must be finite and increasing");
  EXPECT_EQ(error_loading("0 1"), "number state: 'quantiles' must be a list of numbers");
  EXPECT_EQ(error_loading({-1.0, 0.5, 3.0}), "");
}

// A checkpoint saved before numbers had the `embedding` option holds periodic weights: its
// schema gets `embedding: periodic` when read, not today's default, wherever the field sits;
// a field that names its embedding keeps it.
TEST(NumberEncoding, ASchemaSavedBeforeTheEmbeddingOptionKeepsThePeriodicOne) {
  Schema saved = Schema::from_fields_json(
      "r", nlohmann::json::parse(R"({"old": {"type": "number", "loss": "mse"}, "named": {"type": "number",
          "embedding": "both", "n_bins": 8}, "items": {"type": "branch", "length": 2, "fields": {"price": "number",
          "sku": "category"}}, "y": {"type": "category", "target": true}})"));
  add_options_saved_before_they_existed(saved);
  auto fields = build_fields(saved);
  std::map<std::string, nlohmann::json> options;
  for (const auto& f : fields) options[f->spec().name] = f->spec().options;
  EXPECT_EQ(options["old"]["embedding"], "periodic");
  EXPECT_EQ(options["old"]["n_bins"], 16);
  EXPECT_EQ(options["price"]["embedding"], "periodic");
  EXPECT_EQ(options["named"]["embedding"], "both");
  EXPECT_EQ(options["named"]["n_bins"], 8);
  // Saved before linear_term existed (by either the periodic or the first piecewise models).
  EXPECT_EQ(options["old"]["linear_term"], false);
  EXPECT_EQ(options["named"]["linear_term"], false);
  EXPECT_FALSE(options["sku"].contains("embedding"));

  Schema today = Schema::from_fields_json("r", nlohmann::json::parse(R"({"x": "number", "y": {"type": "category",
      "target": true}})"));
  EXPECT_EQ(build_fields(today)[0]->spec().options["embedding"], "piecewise");
  EXPECT_EQ(build_fields(today)[0]->spec().options["linear_term"], true);
}

}  // namespace
}  // namespace j2v
