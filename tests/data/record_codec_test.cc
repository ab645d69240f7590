// The record codec: fitted once on training records, shared by the model and its data modules,
// and restored from the state a checkpoint keeps.
#include <gtest/gtest.h>

#include "data/record_buffer.h"
#include "data/record_codec.h"
#include "schema/field_spec.h"

namespace j2v {
namespace {

Schema orders_schema() {
  Schema schema;
  schema.fields = {Number("amount"), Category("merchant"), Category("fraud").target()};
  return schema;
}

std::shared_ptr<RecordBuffer> records(std::vector<std::string> lines) {
  return RecordBuffer::from_strings(lines, "<records>");
}

TEST(RecordCodec, FitsOnceAndEncodesWithTheFrozenState) {
  RecordCodec codec(orders_schema());
  EXPECT_FALSE(codec.fitted());
  codec.fit(*records({R"({"amount": 1, "merchant": "a", "fraud": "n"})", R"({"amount": 3, "merchant": "b", "fraud": "y"})"}),
            nullptr, 1);
  EXPECT_TRUE(codec.fitted());
  auto state = codec.state_json();
  // A second fit (a resumed run's data module) changes nothing.
  codec.fit(*records({R"({"amount": 100, "merchant": "z", "fraud": "n"})"}), nullptr, 1);
  EXPECT_EQ(codec.state_json(), state);
  auto table = codec.encode(records({R"({"amount": 2, "merchant": "a", "fraud": "y"})"}), nullptr, 1);
  EXPECT_EQ(table.rows, 1);
  EXPECT_EQ(table.columns.size(), 3u);
}

TEST(RecordCodec, LoadsTheStateACheckpointKeeps) {
  RecordCodec trained(orders_schema());
  auto train = records({R"({"amount": 1, "merchant": "a", "fraud": "n"})", R"({"amount": 5, "merchant": "b", "fraud": "y"})",
                        R"({"amount": 9, "merchant": "c", "fraud": "y"})"});
  trained.fit(*train, nullptr, 1);
  RecordCodec restored(orders_schema());
  restored.load(trained.schema(), trained.state_json());
  EXPECT_TRUE(restored.fitted());
  EXPECT_EQ(restored.state_json(), trained.state_json());
  auto probe = records({R"({"amount": 5, "merchant": "c", "fraud": "n"})"});
  auto a = trained.encode(probe, nullptr, 1), b = restored.encode(probe, nullptr, 1);
  ASSERT_EQ(a.columns.size(), b.columns.size());
  for (size_t c = 0; c < a.columns.size(); ++c) {
    EXPECT_EQ(a.columns[c].state, b.columns[c].state) << c;
    EXPECT_EQ(a.columns[c].values, b.columns[c].values) << c;
    EXPECT_EQ(a.columns[c].indices, b.columns[c].indices) << c;
  }
}

TEST(RecordCodec, AStateThatDoesNotFitLeavesTheCodecAsItWas) {
  RecordCodec codec(orders_schema());
  codec.fit(*records({R"({"amount": 1, "merchant": "a", "fraud": "n"})"}), nullptr, 1);
  auto before = codec.state_json();
  Schema other = orders_schema();
  other.fields.push_back(Number("extra"));
  try {
    codec.load(other, before);  // no state for record.extra
    FAIL() << "a state without every field must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("record.extra"), std::string::npos) << e.what();
  }
  EXPECT_EQ(codec.schema().fields.size(), 3u);
  EXPECT_EQ(codec.state_json(), before);
}

}  // namespace
}  // namespace j2v
