#pragma once
// The record codec: a schema's fields with their learned state (vocabularies, statistics) and
// the encoder that turns raw records into columns with that state. Everything between a raw
// record and a batch lives here, so data modules, serving and benchmarks take a codec, and
// the model builds its network from one without anyone reaching into the model.
//
// A codec is shared: the model and its data modules hold the same one. Fitting happens once,
// on training records; loading a checkpoint replaces the codec's schema and state in place,
// so every holder sees what the weights were trained for.
#include <functional>
#include <memory>
#include <string>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/encoded_table.h"
#include "data/record_encoder.h"
#include "fields/field.h"
#include "schema/schema.h"
#include "schema/schema_tree.h"

namespace j2v {

class RecordCodec {
 public:
  // Validates the schema and builds its fields (throws SchemaError naming field and option).
  explicit RecordCodec(Schema schema);

  const Schema& schema() const { return schema_; }
  const SchemaTree& tree() const { return tree_; }
  const std::vector<std::shared_ptr<Field>>& fields() const { return fields_; }
  const RecordEncoder& encoder() const { return *encoder_; }
  bool fitted() const { return fitted_; }

  // Learns the state of every field not yet fitted from training records (all when rows is
  // null) and freezes it. Does nothing when already fitted (a resumed or loaded codec keeps its
  // state); fields that took their state from another model (adopt_state) keep theirs.
  void fit(const RecordBuffer& records, const std::vector<int64_t>* rows, int threads);
  // The same from statistics gathered elsewhere (a stream, chunk by chunk), one per field.
  void fit(const std::vector<std::unique_ptr<FieldStats>>& stats);

  // Encodes with the frozen state. Throws DataError naming file, line and field.
  EncodedTable encode(std::shared_ptr<const RecordBuffer> records, const std::vector<int64_t>* rows, int threads) const {
    return encoder_->encode(std::move(records), rows, threads);
  }

  // Field state by address: what a checkpoint keeps beside the weights.
  nlohmann::json state_json() const;
  // Takes the learned state of each field `same(field, other_field)` accepts from `other`'s
  // field at the same address, before this codec is fitted: what fine-tuning and schema changes
  // keep. Returns the addresses that took state; the codec counts as fitted once every field is.
  std::vector<std::string> adopt_state(const RecordCodec& other,
                                       const std::function<bool(const Field& mine, const Field& theirs)>& same);
  // Replaces the schema and loads its fitted state. Throws std::invalid_argument naming a
  // field whose state is missing; the codec is then unchanged.
  void load(Schema schema, const nlohmann::json& state);

 private:
  void build(Schema schema);

  Schema schema_;
  SchemaTree tree_;
  std::vector<std::shared_ptr<Field>> fields_;
  std::unique_ptr<RecordEncoder> encoder_;
  bool fitted_ = false;
};

}  // namespace j2v
