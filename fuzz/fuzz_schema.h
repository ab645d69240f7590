#pragma once
// The schema every fuzz harness reads records with: nested (a branch of items inside a
// branch), and every datatype, so each field's encoding is reached from arbitrary bytes.
#include <memory>
#include <string>
#include <vector>

#include "data/record_buffer.h"
#include "data/record_codec.h"
#include "schema/schema.h"

namespace j2v::fuzz {

inline const char* kFieldsJson = R"({
  "amount": "number",
  "merchant": {"type": "category", "max_vocab_size": 8},
  "flag": "boolean",
  "tags": "set",
  "note": "text",
  "placed_at": {"type": "dateparts", "parts": ["day_of_week", "hour_of_day", "month_of_year"]},
  "point": {"type": "vector", "n_dim": 3},
  "seller": "entity",
  "city": {"type": "category", "query": "address.city"},
  "items": {"type": "branch", "length": 4, "fields": {
    "sku": "category", "price": "number",
    "parts": {"type": "branch", "length": 2, "fields": {"weight": "number"}}
  }},
  "label": {"type": "category", "target": true}
})";

inline const std::vector<std::string>& seed_records() {
  static const std::vector<std::string> records = {
      R"({"amount": 12.5, "merchant": "books", "flag": true, "tags": ["a", "b"], "note": "leave at door",
          "placed_at": "2024-01-09T03:48:00Z", "point": [1, 2, 3], "seller": "s1", "address": {"city": "Oslo"},
          "items": [{"sku": "x", "price": 3, "parts": [{"weight": 1.5}]}, {"sku": "y", "price": 4}], "label": "no"})",
      R"({"amount": 3, "merchant": "coffee", "flag": false, "tags": "gift", "note": "",
          "placed_at": 1700000000, "point": [0, 0, 1], "seller": "s2", "items": [], "label": "yes"})",
  };
  return records;
}

// A codec fitted on the seed records: what a trained model would encode with.
inline const RecordCodec& fitted_codec() {
  static const std::unique_ptr<RecordCodec> codec = [] {
    auto c = std::make_unique<RecordCodec>(Schema::from_fields_json("record", nlohmann::json::parse(kFieldsJson)));
    c->fit(*RecordBuffer::from_strings(seed_records(), "seed.jsonl"), nullptr, 1);
    return c;
  }();
  return *codec;
}

}  // namespace j2v::fuzz
