#include <gtest/gtest.h>

#include "base/errors.h"
#include "data/record_encoder.h"
#include "data/synthetic_orders.h"
#include "fields/registry.h"
#include "test_util.h"

namespace j2v {
namespace {

constexpr uint8_t kValued = 0, kNull = 1, kPadded = 2;

struct Nested {
  std::vector<std::shared_ptr<Field>> fields;
  SchemaTree tree;
  EncodedTable table;
  const Column& column(const std::string& address) const {
    for (size_t f = 0; f < fields.size(); ++f)
      if (fields[f]->address().str() == address) return table.columns[f];
    throw std::out_of_range(address);
  }
};

Nested encode(const std::string& fields_json, const std::vector<std::string>& records,
              std::vector<std::string> train = {}) {
  if (train.empty()) train = records;
  Schema s = Schema::from_fields_json("order", nlohmann::json::parse(fields_json));
  Nested out;
  out.fields = build_fields(s, &out.tree);
  RecordEncoder encoder(out.fields, out.tree);
  auto buffer = RecordBuffer::from_strings(records, "orders.jsonl");
  auto stats = encoder.collect_stats(train == records ? *buffer : *RecordBuffer::from_strings(train, "train.jsonl"),
                                     nullptr, 1);
  for (size_t f = 0; f < out.fields.size(); ++f) out.fields[f]->fit(*stats[f]);
  out.table = encoder.encode(buffer, nullptr, 1);
  return out;
}

std::string items_schema(const std::string& overflow, int length = 2) {
  return R"({"tier": "category", "items": {"type": "branch", "length": )" + std::to_string(length) +
         R"(, "overflow": ")" + overflow + R"(", "fields": {"sku": "category", "price": {"type": "number", "target": true}}}})";
}

std::string error_of(const std::string& schema, const std::vector<std::string>& records) {
  try {
    encode(schema, records);
  } catch (const DataError& e) {
    return e.what();
  } catch (const SchemaError& e) {
    return std::string("schema: ") + e.what();
  }
  return "";
}

TEST(NestedEncoder, ListsFillSlotsAndTheRestIsPadding) {
  auto e = encode(items_schema("head", 3), {R"({"tier": "a", "items": [{"sku": "x", "price": 1}, {"sku": "y"}]})",
                                            R"({"tier": "b"})", R"({"items": null})", R"({"items": [null]})"});
  ASSERT_EQ(e.tree.branches.size(), 2u);
  EXPECT_EQ(e.tree.branches[1].address.str(), "order.items");
  const Column& sku = e.column("order.items.sku");
  EXPECT_EQ(sku.slots, 3);
  // 4 orders x 3 slots; a missing or null list is empty; a null item is a slot of nulls.
  EXPECT_EQ(sku.state, (std::vector<uint8_t>{kValued, kValued, kPadded, kPadded, kPadded, kPadded, kPadded, kPadded,
                                             kPadded, kNull, kPadded, kPadded}));
  const Column& price = e.column("order.items.price");
  EXPECT_EQ(price.state[0], kValued);
  EXPECT_EQ(price.state[1], kNull);  // a present item without the key
  EXPECT_EQ(e.table.lengths[1], (std::vector<int32_t>{2, 0, 0, 1}));
  EXPECT_EQ(e.column("order.tier").slots, 1);
}

TEST(NestedEncoder, AnObjectWhereAListIsDeclaredIsAListOfOne) {
  auto e = encode(items_schema("head", 3), {R"({"items": {"sku": "x", "price": 1}})", R"({"items": [{"sku": "y"}]})"});
  EXPECT_EQ(e.table.lengths[1], (std::vector<int32_t>{1, 1}));
  EXPECT_EQ(e.column("order.items.sku").state,
            (std::vector<uint8_t>{kValued, kPadded, kPadded, kValued, kPadded, kPadded}));
  EXPECT_EQ(e.column("order.items.price").state[0], kValued);
}

TEST(NestedEncoder, OverflowKeepsTheHeadOrTheTailOrRefuses) {
  std::string three = R"({"items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]})";
  // Frequencies a > b > c give the vocabulary indices a=1, b=2, c=3 (0 is "unavailable").
  std::vector<std::string> train = {R"({"items": [{"sku": "a"}, {"sku": "b"}]})", R"({"items": [{"sku": "a"}, {"sku": "b"}]})",
                                    R"({"items": [{"sku": "a"}, {"sku": "c"}]})"};
  auto head = encode(items_schema("head"), {three}, train);
  auto tail = encode(items_schema("tail"), {three}, train);
  EXPECT_EQ(head.column("order.items.sku").indices, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(tail.column("order.items.sku").indices, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(head.table.lengths[1][0], 2);
  EXPECT_EQ(tail.table.lengths[1][0], 2);
  std::string error = error_of(items_schema("error"), {R"({"items": []})", three});
  EXPECT_NE(error.find("orders.jsonl:2:"), std::string::npos) << error;
  EXPECT_NE(error.find("branch 'order.items' has 3 items, more than its length 2"), std::string::npos) << error;
}

TEST(NestedEncoder, AScalarWhereAListIsDeclaredOrAMixedListIsAnError) {
  std::string scalar = error_of(items_schema("head"), {R"({"items": 5})"});
  EXPECT_NE(scalar.find("orders.jsonl:1: branch 'order.items' expects a list of objects, got a number"),
            std::string::npos)
      << scalar;
  std::string mixed = error_of(items_schema("head"), {R"({"items": [{"sku": "a"}, "b"]})"});
  EXPECT_NE(mixed.find("branch 'order.items': item 2 is a string, expected an object"), std::string::npos) << mixed;
  std::string wrong_type = error_of(items_schema("head"), {R"({"items": [{"sku": "a", "price": {"x": 1}}]})"});
  EXPECT_NE(wrong_type.find("field 'order.items.price'"), std::string::npos) << wrong_type;
}

TEST(NestedEncoder, BranchesNestAndSlotsMultiply) {
  std::string schema = R"({"users": {"type": "branch", "length": 2, "fields": {
      "name": "category",
      "visits": {"type": "branch", "length": 3, "fields": {"page": {"type": "category", "target": true}}}}}})";
  auto e = encode(schema, {R"({"users": [{"name": "a", "visits": [{"page": "p"}]},
                                         {"name": "b", "visits": [{"page": "q"}, {"page": "r"}, {"page": "s"}, {"page": "t"}]}]})"});
  const auto& visits = e.tree.branches[2];
  EXPECT_EQ(visits.address.str(), "order.users.visits");
  EXPECT_EQ(visits.slots, 6);
  const auto& page = e.column("order.users.visits.page");
  EXPECT_EQ(page.state, (std::vector<uint8_t>{kValued, kPadded, kPadded, kValued, kValued, kValued}));
  EXPECT_EQ(e.table.lengths[2], (std::vector<int32_t>{1, 3}));
}

TEST(NestedEncoder, SchemaMistakesAboutBranchesAreNamed) {
  auto schema_error = [](const std::string& fields) {
    try {
      Schema s = Schema::from_fields_json("order", nlohmann::json::parse(fields));
      SchemaTree tree;
      auto leaves = build_fields(s, &tree);
      RecordEncoder encoder(leaves, tree);
    } catch (const SchemaError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(schema_error(R"({"x": "number", "items": {"type": "branch", "length": 0, "fields": {"y": {"type": "number", "target": true}}}})")
                .find("branch 'items': option 'length' must be an integer in [1, 4096]"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"x": "number", "items": {"type": "branch", "overflow": "middle", "fields": {"y": {"type": "number", "target": true}}}})")
                .find("must be one of head, tail, error"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"x": "number", "items": {"type": "branch", "attention": "sparse", "fields": {"y": {"type": "number", "target": true}}}})")
                .find("must be one of mha, gqa, mqa, none"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"x": "number", "items": {"type": "branch", "lenght": 4, "fields": {"y": {"type": "number", "target": true}}}})")
                .find("field 'items': unknown option 'lenght' for a branch (allowed: type, query, embed, active, fields, "),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"x": {"type": "number", "target": true}, "items": {"type": "branch", "fields": {}}})")
                .find("branch 'items' has no fields"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"x": "number", "n": {"type": "number", "query": "items.count", "target": true},
                             "items": {"type": "branch", "fields": {"y": "number"}}})")
                .find("field 'order.n' queries into the list of another branch"),
            std::string::npos);
}

TEST(NestedEncoder, ChildOrderSurvivesTheJsonRoundTrip) {
  Schema s;
  s.name = "order";
  s.fields = {Category("tier"), Branch("items", {Number("price"), Category("sku").target()}).length(4)};
  Schema back = Schema::from_json(s.to_json());
  ASSERT_EQ(back.fields.size(), 2u);
  ASSERT_EQ(back.fields[1].children.size(), 2u);
  EXPECT_EQ(back.fields[1].children[0].name, "price");  // not alphabetical
  EXPECT_EQ(back.fields[1].options["length"], 4);
  EXPECT_EQ(back.to_json(), s.to_json());
}

TEST(SyntheticOrders, AreDeterministicAndPrefixStable) {
  auto small = synthetic_orders({.rows = 10, .seed = 7});
  auto large = synthetic_orders({.rows = 50, .seed = 7});
  for (size_t i = 0; i < small.size(); ++i) EXPECT_EQ(small[i], large[i]);
  EXPECT_NE(small[0], synthetic_orders({.rows = 1, .seed = 8})[0]);
  int flagged = 0;
  for (const auto& line : synthetic_orders({.rows = 2000, .seed = 1})) {
    auto order = nlohmann::json::parse(line);
    bool expected = false;
    for (const auto& item : order["items"]) {
      int sku = std::stoi(item["sku"].get<std::string>().substr(4));
      expected = expected || (synthetic_item_is_fragile(sku) && item["price"].get<double>() > kSyntheticExpensivePrice);
    }
    EXPECT_EQ(order["flagged"] == "yes", expected);
    flagged += expected;
  }
  EXPECT_GT(flagged, 600);  // a balanced enough label: 30-70% of orders
  EXPECT_LT(flagged, 1400);
  auto flat = nlohmann::json::parse(synthetic_orders({.rows = 1, .seed = 7, .flatten = true})[0]);
  EXPECT_TRUE(flat.contains("max_price"));
  EXPECT_FALSE(flat.contains("items"));
  EXPECT_EQ(flat["flagged"], nlohmann::json::parse(small[0])["flagged"]);
}

}  // namespace
}  // namespace j2v
