#include <gtest/gtest.h>

#include "schema/schema_edit.h"
#include "schema/selector.h"

namespace j2v {
namespace {

Schema orders() {
  Schema s;
  s.name = "record";
  s.fields = {Number("amount"), Category("seller").max_vocab_size(50), Text("note"), Category("flagged").target(),
              Branch("items", {Number("price").p_mask(0.2), Category("sku"), Boolean("gift")}).length(8)};
  return s;
}

std::vector<std::string> addresses(const std::vector<SchemaNode>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n.address);
  return out;
}

using V = std::vector<std::string>;

TEST(Selector, PicksNodesByAnyAttributeAndCombines) {
  auto s = orders();
  EXPECT_EQ(addresses(select_nodes(s, where("type") == "number")), (V{"record.amount", "record.items.price"}));
  EXPECT_EQ(addresses(select_nodes(s, where("name").is_in({"note", "seller"}))), (V{"record.seller", "record.note"}));
  EXPECT_EQ(addresses(select_nodes(s, where("address").matches("record\\.items\\..*"))),
            (V{"record.items.price", "record.items.sku", "record.items.gift"}));
  EXPECT_EQ(addresses(select_nodes(s, where("target") == true)), (V{"record.flagged"}));
  EXPECT_EQ(addresses(select_nodes(s, where("type") == "category" & ~(where("target") == true))),
            (V{"record.seller", "record.items.sku"}));
  EXPECT_EQ(addresses(select_nodes(s, where("name") == "note" | where("p_mask") != 0)),
            (V{"record.note", "record.items.price"}));
  // Datatype options are attributes; a node without one reads null.
  EXPECT_EQ(addresses(select_nodes(s, where("max_vocab_size") == 50)), (V{"record.seller"}));
  EXPECT_EQ(addresses(select_nodes(s, where("length") == 8)), (V{"record.items"}));
  EXPECT_EQ(select_nodes(s, where("length").is_null()).size(), 7u);
  EXPECT_EQ(addresses(select_nodes(s, where("name").contains("ag"))), (V{"record.flagged"}));
  EXPECT_EQ(addresses(select_nodes(s, where("parent") == "record.items" & where("type") == "boolean")),
            (V{"record.items.gift"}));
  EXPECT_THROW(where("name").matches("("), std::invalid_argument);
}

TEST(SchemaEdit, UpdateExtendRemoveReturnChangedCopies) {
  auto s = orders();
  auto updated = update_schema(s, where("type") == "number", {{"p_mask", 0.1}});
  EXPECT_EQ(updated.fields[0].p_mask, 0.1);
  EXPECT_EQ(updated.fields[4].children[0].p_mask, 0.1);
  EXPECT_EQ(s.fields[0].p_mask, 0.0) << "the input is unchanged";
  // An update of a branch keeps its children.
  auto branch = update_schema(s, where("name") == "items", {{"length", 4}});
  EXPECT_EQ(branch.fields[4].options["length"], 4);
  EXPECT_EQ(branch.fields[4].children.size(), 3u);

  auto extended = extend_schema(s, where("address") == "record.items", {Boolean("returned")});
  EXPECT_EQ(extended.fields[4].children.back().name, "returned");
  auto top = extend_schema(s, where("address") == "record", {Number("tax")});
  EXPECT_EQ(top.fields.back().name, "tax");

  auto removed = remove_from_schema(s, where("name").is_in({"note", "seller"}));
  EXPECT_EQ(removed.fields.size(), 3u);
  auto no_branch = remove_from_schema(s, where("address") == "record.items");
  EXPECT_EQ(no_branch.fields.size(), 4u);
}

TEST(SchemaEdit, BadChangesAreRefusedNamingWhy) {
  auto s = orders();
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const SchemaError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { update_schema(s, where("type") == "numbr", {{"p_mask", 0.1}}); })
                .find("the selector `type == \"numbr\"` matches no node"),
            std::string::npos);
  EXPECT_NE(message([&] { update_schema(s, where("name") == "amount", {{"type", "category"}}); }).find("remove the node"),
            std::string::npos);
  EXPECT_NE(message([&] { update_schema(s, where("name") == "amount", {{"p_mask", "lots"}}); }).find("p_mask"),
            std::string::npos);
  EXPECT_NE(message([&] { extend_schema(s, where("name") == "amount", {Boolean("x")}); }).find("only a branch"),
            std::string::npos);
  EXPECT_NE(message([&] { extend_schema(s, where("name") == "items", {Boolean("gift")}); }).find("already has"),
            std::string::npos);
  EXPECT_NE(message([&] { remove_from_schema(s, where("target") == false); }).find("input"), std::string::npos)
      << "removing every input leaves no model";
}

}  // namespace
}  // namespace j2v
