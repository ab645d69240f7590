#include <gtest/gtest.h>

#include "fields/registry.h"
#include "schema/query_path.h"
#include "schema/schema.h"

namespace j2v {
namespace {

TEST(QueryPath, SplitsOnDotsAndKeepsBacktickedKeysWhole) {
  EXPECT_EQ(parse_query_path("a.b.c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(parse_query_path("meta.`user.id`"), (std::vector<std::string>{"meta", "user.id"}));
  EXPECT_EQ(format_query_path({"meta", "user.id"}), "meta.`user.id`");
  EXPECT_THROW(parse_query_path("a..b"), std::invalid_argument);
  EXPECT_THROW(parse_query_path("a.`b"), std::invalid_argument);
}

TEST(Schema, BuildersMirrorThePythonApi) {
  Schema s;
  s.fields = {Number("amount"), Category("merchant").max_vocab_size(128),
              Category("fraud").target().max_vocab_size(2).query("labels.fraud")};
  auto fields = build_fields(s);
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[1]->spec().options["max_vocab_size"], 128);
  EXPECT_EQ(fields[1]->spec().options["topk"], 3);  // default filled by the datatype
  EXPECT_TRUE(fields[2]->spec().target);
  EXPECT_EQ(fields[2]->address().str(), "record.fraud");
  EXPECT_EQ(fields[2]->spec().query_keys(), (std::vector<std::string>{"labels", "fraud"}));
}

TEST(Schema, JsonRoundTripKeepsEveryOption) {
  auto fields = nlohmann::json::parse(R"({
    "price": {"type": "number", "target": true, "loss": "huber", "weight": 2.0},
    "cut": {"type": "category", "max_vocab_size": 16, "p_mask": 0.1, "query": "gem.`cut.name`"},
    "carat": "number"})");
  Schema s = Schema::from_fields_json("diamond", fields);
  Schema again = Schema::from_json(s.to_json());
  EXPECT_EQ(again.to_json(), s.to_json());
  EXPECT_EQ(again.name, "diamond");
  auto cut = std::find_if(again.fields.begin(), again.fields.end(), [](auto& f) { return f.name == "cut"; });
  EXPECT_EQ(cut->query, (std::vector<std::string>{"gem", "cut.name"}));
  EXPECT_DOUBLE_EQ(cut->p_mask, 0.1);
}

std::string error_of(const std::string& fields_json) {
  try {
    Schema s = Schema::from_fields_json("record", nlohmann::json::parse(fields_json));
    build_fields(s);
  } catch (const SchemaError& e) {
    return e.what();
  }
  return "";
}

TEST(Schema, ErrorsNameTheFieldAndTheAllowedValues) {
  EXPECT_NE(error_of(R"({"a": "numbr", "t": {"type": "number", "target": true}})").find("unknown field type 'numbr' (allowed: boolean, category, dateparts, entity, hash, number, set, text, vector)"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"a": {"type": "category", "max_vocab": 3}, "t": {"type": "number", "target": true}})")
                .find("field 'a': unknown option 'max_vocab'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"a": {"type": "number", "loss": "l3"}, "t": {"type": "number", "target": true}})")
                .find("'loss' must be one of mse, mae, huber"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"a": {"type": "number", "p_mask": 1.5}, "t": {"type": "number", "target": true}})")
                .find("'p_mask' must be in [0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"a": "number", "b": "category"})").find("nothing to learn"), std::string::npos);
  EXPECT_NE(error_of(R"({"t": {"type": "number", "target": true}})").find("at least one input"), std::string::npos);
  EXPECT_NE(error_of(R"({"a": {"target": true}})").find("missing 'type'"), std::string::npos);
  EXPECT_NE(error_of(R"({})").find("no fields"), std::string::npos);
}

TEST(Schema, FieldOrderSurvivesTheJsonRoundTrip) {
  Schema s;
  s.fields = {Number("zeta"), Category("alpha").target(), Number("mid")};
  Schema again = Schema::from_json(nlohmann::json::parse(s.to_json().dump()));
  ASSERT_EQ(again.fields.size(), 3u);
  EXPECT_EQ(again.fields[0].name, "zeta");
  EXPECT_EQ(again.fields[1].name, "alpha");
  EXPECT_EQ(again.fields[2].name, "mid");
}

TEST(Schema, SelfSupervisedSchemaIsValidWithMasking) {
  EXPECT_EQ(error_of(R"({"a": {"type": "number", "p_mask": 0.2}, "b": "category"})"), "");
}

}  // namespace
}  // namespace j2v
