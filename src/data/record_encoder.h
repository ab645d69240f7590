#pragma once
// Turns raw JSON records into columns. A record is parsed once (simdjson On Demand) and
// walked once: its keys are matched against a trie of the fields' query paths and each
// value is handed to its field; a branch's list fills the branch's slots, the rest are
// padded. Nothing on this path allocates per record. Work is split
// across threads by record ranges.
#include <memory>
#include <optional>
#include <vector>

#include "data/encoded_table.h"
#include "fields/field.h"
#include "schema/schema_tree.h"

namespace j2v {

class RecordEncoder {
 public:
  // Without a tree every field sits in the root (a flat schema). Throws SchemaError when
  // two query paths collide.
  explicit RecordEncoder(std::vector<std::shared_ptr<Field>> fields, SchemaTree tree = {});
  ~RecordEncoder();

  // Statistics of every field over the given records (all when rows is null), for fitting.
  std::vector<std::unique_ptr<FieldStats>> collect_stats(const RecordBuffer& records,
                                                         const std::vector<int64_t>* rows, int threads) const;
  // Encodes with the fields' frozen state. Throws DataError naming file, line and field.
  EncodedTable encode(std::shared_ptr<const RecordBuffer> records, const std::vector<int64_t>* rows,
                      int threads) const;

  const std::vector<std::shared_ptr<Field>>& fields() const { return fields_; }
  const SchemaTree& tree() const { return tree_; }

 private:
  struct Trie;
  std::vector<std::shared_ptr<Field>> fields_;
  SchemaTree tree_;
  std::unique_ptr<Trie> trie_;
};

int resolve_threads(int requested);

}  // namespace j2v
