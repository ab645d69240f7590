// The branch option `mask`: which items a training step hides.
#include <gtest/gtest.h>

#include "fields/registry.h"
#include "model/item_mask.h"

namespace j2v {
namespace {

SchemaTree tree_of(const std::string& fields_json) {
  Schema s = Schema::from_fields_json("r", nlohmann::json::parse(fields_json));
  SchemaTree tree;
  build_fields(s, &tree);
  return tree;
}

// Two lists of length 4 holding 3 and 1 items.
torch::Tensor two_lists() { return torch::tensor({1, 1, 1, 0, 1, 0, 0, 0}, torch::kBool); }
std::function<torch::Tensor(int64_t)> uniform() {
  auto generator = std::make_shared<torch::Generator>(at::detail::createCPUGenerator(7));
  return [generator](int64_t n) { return torch::rand({n}, *generator); };
}
std::vector<int64_t> as_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(ItemMask, AWindowAtTheEndHidesTheLastItemsOfEachList) {
  auto tree = tree_of(R"({"e": {"type": "branch", "length": 4, "mask": {"count": 1, "window": "end"}, "fields": {"x": "number"}}})");
  std::vector<torch::Tensor> present = {torch::ones({2}, torch::kBool), two_lists()};
  auto hidden = hide_items(tree, present, uniform());
  ASSERT_EQ(hidden.size(), 2u);
  EXPECT_EQ(as_vector(hidden[1]), (std::vector<int64_t>{0, 0, 1, 0, 1, 0, 0, 0}));
}

TEST(ItemMask, AStartWindowByRateRoundsUp) {
  auto tree = tree_of(R"({"e": {"type": "branch", "length": 4, "mask": {"rate": 0.5, "window": "start"}, "fields": {"x": "number"}}})");
  std::vector<torch::Tensor> present = {torch::ones({2}, torch::kBool), two_lists()};
  auto hidden = hide_items(tree, present, uniform());
  // ceil(0.5 x 3) = 2 of the first list, ceil(0.5 x 1) = 1 of the second.
  EXPECT_EQ(as_vector(hidden[1]), (std::vector<int64_t>{1, 1, 0, 0, 1, 0, 0, 0}));
}

TEST(ItemMask, RandomCountHidesExactlyThatManyItemsNeverPadding) {
  auto tree = tree_of(R"({"e": {"type": "branch", "length": 4, "mask": {"count": 2}, "fields": {"x": "number"}}})");
  auto generator = uniform();
  std::vector<int64_t> seen(4, 0);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<torch::Tensor> present = {torch::ones({2}, torch::kBool), two_lists()};
    auto h = as_vector(hide_items(tree, present, generator)[1]);
    EXPECT_EQ(h[0] + h[1] + h[2], 2);  // two of the three items
    EXPECT_EQ(h[3], 0);                 // padding is never hidden
    EXPECT_EQ(h[4], 1);                 // the lone item of the second list
    for (int j = 0; j < 3; ++j) seen[j] += h[j];
  }
  for (int j = 0; j < 3; ++j) EXPECT_GT(seen[j], 10) << "item " << j << " is hardly ever chosen";
}

TEST(ItemMask, AHiddenItemHidesItsSubtreeAndNoBranchMeansNothingHidden) {
  auto tree = tree_of(R"({"e": {"type": "branch", "length": 2, "mask": {"count": 1, "window": "start"},
                               "fields": {"x": "number", "sub": {"type": "branch", "length": 2, "fields": {"y": "number"}}}}})");
  // one record: 2 items; item 0 has 2 sub-items, item 1 has 1.
  std::vector<torch::Tensor> present = {torch::ones({1}, torch::kBool), torch::tensor({1, 1}, torch::kBool),
                                        torch::tensor({1, 1, 1, 0}, torch::kBool)};
  auto hidden = hide_items(tree, present, uniform());
  EXPECT_EQ(as_vector(hidden[1]), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(as_vector(hidden[2]), (std::vector<int64_t>{1, 1, 0, 0}));
  auto plain = tree_of(R"({"e": {"type": "branch", "length": 4, "fields": {"x": "number"}}, "y": {"type": "number", "target": true}})");
  EXPECT_TRUE(hide_items(plain, {torch::ones({2}, torch::kBool), two_lists()}, uniform()).empty());
  // A mask that never fires is not something to learn.
  EXPECT_THROW(tree_of(R"({"e": {"type": "branch", "length": 4, "mask": {"count": 1, "p": 0}, "fields": {"x": "number"}}})"),
               SchemaError);
}

}  // namespace
}  // namespace j2v
