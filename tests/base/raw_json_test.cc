// Raw JSON values keep the text they were read as, inside trees that are printed or read.
#include "base/raw_json.h"

#include <gtest/gtest.h>

namespace j2v {
namespace {

TEST(RawJson, PrintsTheTextVerbatimAndReadsAsTheTree) {
  nlohmann::json row = {{"inputs", raw_json(R"({"b": 1.50e1, "a": [true, null]})")},
                        {"predictions", {{"x \"y\"", {1, 2.5}}, {"z", raw_json("[0.1,2.0]")}}},
                        {"n", nullptr}};
  // Raw text is copied as it is (its spacing, key order and number spelling); the rest is
  // printed as dump() prints it.
  EXPECT_EQ(dump_with_raw_json(row),
            R"({"inputs":{"b": 1.50e1, "a": [true, null]},"n":null,"predictions":{"x \"y\"":[1,2.5],"z":[0.1,2.0]}})");
  auto parsed = nlohmann::json::parse(dump_with_raw_json(row));
  materialize_raw_json(row);
  EXPECT_EQ(parsed, row);
  EXPECT_EQ(row["inputs"]["b"], 15.0);
  EXPECT_EQ(dump_with_raw_json(row), row.dump()) << "without raw values it is dump()";
}

}  // namespace
}  // namespace j2v
