// The text a JsonTextBuilder writes is valid JSON that reads back as the tree a
// JsonTreeBuilder builds from the same tokens, every number the same double.
#include "base/json_builder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace j2v {
namespace {

void write_sample(JsonBuilder& out) {
  const float embedding[] = {0.1f, -2.5f, 1e-7f, 3.4028235e38f};
  out.begin_object();
  out.key("record.a \"quoted\"");
  out.begin_object();
  out.key("content");
  out.value({{"value", "x"}, {"probability", 0.25}});
  out.key("embedding");
  out.numbers(embedding, 4);
  out.key("state");
  out.begin_object();
  out.key("masked");
  out.number(0.3333333f);
  out.key("valued");
  out.number(1.0f);
  out.end_object();
  out.end_object();
  out.key("record.items");
  out.begin_array();
  out.value(nullptr);
  out.begin_array();
  out.end_array();
  out.begin_object();
  out.key("embedding");
  out.numbers(embedding, 0);
  out.end_object();
  out.end_array();
  out.end_object();
}

TEST(JsonBuilder, TextReadsBackAsTheTree) {
  std::string text;
  JsonTextBuilder text_builder(text);
  write_sample(text_builder);
  JsonTreeBuilder tree_builder;
  write_sample(tree_builder);
  nlohmann::json tree = tree_builder.take();
  nlohmann::json parsed = nlohmann::json::parse(text);  // throws on invalid JSON

  EXPECT_EQ(parsed, tree) << "every number the same double";
  EXPECT_EQ(text, tree.dump()) << "and printed alike: the tree's keys are sorted, so were the tokens";
  const auto& a = parsed["record.a \"quoted\""];
  EXPECT_EQ(a["state"]["masked"].get<double>(), static_cast<double>(0.3333333f));
  EXPECT_TRUE(a["state"]["valued"].is_number_float()) << "1.0 stays a float, not the integer 1";
  EXPECT_TRUE(tree_builder.take().is_null()) << "take() empties the builder";
}

TEST(JsonBuilder, NumbersAreTheWidenedFloatAndNonFiniteIsNull) {
  std::string text;
  append_json_number(text, 0.1f);
  text += ' ';
  append_json_number(text, 2.0f);
  text += ' ';
  append_json_number(text, -1e-30f);
  text += ' ';
  append_json_number(text, std::numeric_limits<float>::quiet_NaN());
  text += ' ';
  append_json_number(text, -std::numeric_limits<float>::infinity());
  EXPECT_EQ(text, "0.10000000149011612 2.0 -1.0000000031710769e-30 null null");
}

}  // namespace
}  // namespace j2v
