#pragma once
// A schema inferred from a sample of records, so a first model needs no hand-written fields
// (`json2vec infer-schema`, and `fit` without model.fields). The rules, each stated in the
// emitted YAML beside the field it decided:
//   - true/false -> boolean
//   - numbers -> number; integers in the Unix-time range under a time-like name (…time,
//     …date, …_at, timestamp, epoch) -> dateparts (unit s or ms)
//   - strings: mostly ISO-8601 dates -> dateparts; a distinct value in every record (20 or
//     more) -> an identifier, left out; long strings with spaces -> text; many distinct
//     values (over 1,000, repeating) -> hash; otherwise -> category
//   - numbers and strings mixed -> category over their text (a number column with a few
//     "n/a" is a category, stated so: clean it and declare number if it is one)
//   - lists: of objects -> a branch (length: the 95th percentile of the lengths seen, at
//     most 256), of strings or of varying-length numbers -> set, of numbers all of one
//     length (2 or more) -> vector; an object where lists are seen is read as a list of one
//   - objects -> their keys become fields with query paths (`customer_age` reads
//     customer.age)
//   - never present, always null, or lists of lists -> left out, said so
#include <cstdint>
#include <string>
#include <vector>

#include "data/record_buffer.h"
#include "schema/schema.h"

namespace j2v {

struct SchemaInferenceOptions {
  int64_t sample = 10000;  // records read from the start of the file
  std::string target;      // a field (name or address) to predict; empty: self-supervised
  std::string name = "record";
};

struct InferredSchema {
  Schema schema;
  int64_t records = 0;                      // records sampled
  std::vector<std::pair<std::string, std::string>> reasons;   // address -> why this datatype
  std::vector<std::pair<std::string, std::string>> left_out;  // address -> why it was left out
  // The config a user edits: data.train, model.fields with a comment beside each decision.
  std::string to_yaml(const std::string& train_path) const;
};

// Throws DataError naming the file when nothing can be read, std::invalid_argument when
// `target` is not among the fields found.
InferredSchema infer_schema(const RecordBuffer& records, const SchemaInferenceOptions& options);
InferredSchema infer_schema_from_file(const std::string& path, const SchemaInferenceOptions& options);

}  // namespace j2v
