#include <gtest/gtest.h>

#include "base/errors.h"
#include "data/record_encoder.h"
#include "encoded_fields.h"
#include "fields/registry.h"
#include "test_util.h"

namespace j2v {
namespace {

using testing::Encoded;

Encoded encode(const std::string& fields_json, const std::vector<std::string>& train,
               const std::vector<std::string>& records, int threads = 1) {
  Schema s = Schema::from_fields_json("record", nlohmann::json::parse(fields_json));
  Encoded out;
  out.fields = build_fields(s);
  RecordEncoder encoder(out.fields);
  auto train_buffer = RecordBuffer::from_strings(train, "train.jsonl");
  auto stats = encoder.collect_stats(*train_buffer, nullptr, threads);
  for (size_t f = 0; f < out.fields.size(); ++f) out.fields[f]->fit(*stats[f]);
  out.table = encoder.encode(RecordBuffer::from_strings(records, "input.jsonl"), nullptr, threads);
  return out;
}

const char* kSchema = R"({"x": "number", "c": "category", "y": {"type": "number", "target": true}})";
constexpr uint8_t kValued = 0, kNull = 1, kMasked = 3, kOther = 4;

TEST(Encoder, NumbersFollowTheStatedRules) {
  auto e = encode(kSchema, {R"({"x": 1, "y": 0})", R"({"x": 3, "y": 0})"},
                  {R"({"x": 2})", R"({"x": "2.5"})", R"({"x": "NaN"})", R"({"x": "inf"})", R"({"x": "abc"})",
                   R"({"x": null})", R"({})", R"({"x": "<MASK>"})", R"({"x": true})"});
  const Column& x = e.column("x");
  EXPECT_EQ(x.state, (std::vector<uint8_t>{kValued, kValued, kNull, kOther, kOther, kNull, kNull, kMasked, kValued}));
  // mean 2, std sqrt(2): values are z-scored with the training statistics (the first of a
  // cell's two floats; the second is its quantile position)
  ASSERT_EQ(x.width, 2);
  EXPECT_NEAR(x.values[0], 0.0, 1e-6);
  EXPECT_NEAR(x.values[2], 0.5 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(x.values[16], -1.0 / std::sqrt(2.0), 1e-6);
}

TEST(Encoder, CategoriesKeepTheMostFrequentLabelsAndBucketTheRest) {
  std::string schema = R"({"c": {"type": "category", "max_vocab_size": 2}, "y": {"type": "number", "target": true}})";
  auto e = encode(schema, {R"({"c": "a"})", R"({"c": "a"})", R"({"c": "b"})", R"({"c": "b"})", R"({"c": "z"})"},
                  {R"({"c": "a"})", R"({"c": "b"})", R"({"c": "z"})", R"({"c": "never seen"})", R"({"c": 7})",
                   R"({"c": null})"});
  const Column& c = e.column("c");
  EXPECT_EQ(c.indices[0], 1);  // "a": ties broken by label, a before b
  EXPECT_EQ(c.indices[1], 2);
  EXPECT_EQ(c.indices[2], 0);  // beyond max_vocab_size: unavailable bucket
  EXPECT_EQ(c.indices[3], 0);  // unseen
  EXPECT_EQ(c.state[4], kValued);  // numbers are labels ("7")
  EXPECT_EQ(c.state[5], kNull);
  EXPECT_EQ(e.fields[0]->state_json()["vocabulary"], (std::vector<std::string>{"a", "b"}));
}

TEST(Encoder, QueryPathsReachIntoNestedObjectsAndLiteralDottedKeys) {
  std::string schema = R"({"city": {"type": "category", "query": "address.city"},
                           "uid": {"type": "category", "query": "`user.id`"},
                           "y": {"type": "number", "target": true}})";
  auto e = encode(schema, {R"({"address": {"city": "Oslo"}, "user.id": "u1"})"},
                  {R"({"address": {"zip": 1, "city": "Oslo"}, "user.id": "u1", "other": [1, {"a": 2}]})",
                   R"({"address": "not an object", "user": {"id": "u1"}})"});
  EXPECT_EQ(e.column("city").state[0], kValued);
  EXPECT_EQ(e.column("city").indices[0], 1);
  EXPECT_EQ(e.column("uid").indices[0], 1);
  EXPECT_EQ(e.column("city").state[1], kNull);  // the path does not exist in this record
  EXPECT_EQ(e.column("uid").state[1], kNull);
}

std::string encode_error(const std::vector<std::string>& records) {
  try {
    encode(kSchema, {R"({"x": 1, "c": "a", "y": 1})"}, records);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(Encoder, BadRecordsNameFileLineAndField) {
  EXPECT_EQ(encode_error({R"({"x": 1})", R"({"x": {"nested": 1}})"}),
            "input.jsonl:2: field 'record.x' is an object, but the field is a number");
  EXPECT_EQ(encode_error({R"({"c": [1, 2]})"}), "input.jsonl:1: field 'record.c' is an array, but the field is a category");
  auto malformed = encode_error({R"({"x": 1})", R"({"x": 1,,})"});
  EXPECT_EQ(malformed.rfind("input.jsonl:2: malformed JSON", 0), 0u) << malformed;
  EXPECT_EQ(encode_error({R"([1, 2])"}).rfind("input.jsonl:1: the record is not a JSON object", 0), 0u);
  // Two objects on a line, or a stray brace, would otherwise keep the first and drop the rest.
  for (const char* line : {R"({"x": 1} {"x": 2})", "{\"x\": 1}\r{\"x\": 2}"})
    EXPECT_EQ(encode_error({R"({"x": 1})", line}), "input.jsonl:2: content after the JSON object (one record per line)")
        << line;
  for (const char* line : {R"({"x": 1}})", R"({"x": 1} 5)", R"({"x": 1} [)"}) {
    auto error = encode_error({R"({"x": 1})", line});
    EXPECT_TRUE(error.rfind("input.jsonl:2: malformed JSON", 0) == 0 ||
                error == "input.jsonl:2: content after the JSON object (one record per line)")
        << line << " -> " << error;
  }
}

TEST(Encoder, FileLinesCountBlankLinesAndGzipIsRead) {
  auto dir = testing::temp_dir("encoder");
  auto path = dir / "data.jsonl";
  testing::write_lines(path, {R"({"x": 1})", "", R"({"x": [})"});
  Schema s = Schema::from_fields_json("record", nlohmann::json::parse(kSchema));
  auto fields = build_fields(s);
  RecordEncoder encoder(fields);
  auto buffer = RecordBuffer::from_file(path.string());
  ASSERT_EQ(buffer->size(), 2u);
  EXPECT_EQ(buffer->line(1), 3);
  try {
    encoder.collect_stats(*buffer, nullptr, 1);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path.string() + ":3: ", 0), 0u) << e.what();
  }
  EXPECT_THROW(RecordBuffer::from_file((dir / "missing.jsonl").string()), DataError);
  std::filesystem::remove_all(dir);
}

TEST(Encoder, ThreadsGiveTheSameResultAsOne) {
  std::vector<std::string> records;
  for (int i = 0; i < 5000; ++i)
    records.push_back(nlohmann::json{{"x", i % 17}, {"c", "l" + std::to_string(i % 5)}, {"y", i}}.dump());
  auto one = encode(kSchema, records, records, 1);
  auto four = encode(kSchema, records, records, 4);
  for (size_t f = 0; f < one.table.columns.size(); ++f) {
    EXPECT_EQ(one.table.columns[f].state, four.table.columns[f].state);
    EXPECT_EQ(one.table.columns[f].values, four.table.columns[f].values);
    EXPECT_EQ(one.table.columns[f].indices, four.table.columns[f].indices);
  }
}

}  // namespace
}  // namespace j2v
