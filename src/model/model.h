#pragma once
// j2v::Model: a schema turned into a network. A cheap handle (like LibTorch's module
// holders) to a ModelImpl, which is an engine::Module the Trainer can run.
#include <memory>
#include <string>
#include <vector>

#include "model/model_options.h"
#include "schema/schema.h"

namespace j2v {

namespace engine {
class Module;
}
class ModelImpl;
class RecordCodec;

class Model {
 public:
  static Model from_schema(std::vector<FieldSpec> fields, ModelOptions options = {});
  static Model from_schema(Schema schema, ModelOptions options = {});
  // Everything needed to predict comes from the checkpoint file alone.
  static Model load(const std::string& checkpoint_path);

  // One payload per record, in input order: {"inputs": ..., "predictions": {address: ...}}.
  // A field given as "<MASK>" is imputed.
  nlohmann::json predict(const std::vector<std::string>& json_records) const;
  // The same, batch_size records per forward pass, encoding on `threads` threads (0: all cores).
  nlohmann::json predict(const std::vector<std::string>& json_records, int64_t batch_size, int threads) const;
  // True once the network exists: trained, or loaded from a checkpoint.
  bool trained() const;
  // An independent copy with the same codec and weights, in evaluation mode: a serving
  // worker's own (one module is not safe to run from two threads).
  Model clone() const;

  const Schema& schema() const;
  const ModelOptions& options() const;
  // The fields, their learned state and the encoder: what data modules and servers are given
  // (`TableDataModule data(model.codec(), splits)`), so they fit and encode what this model reads.
  const std::shared_ptr<RecordCodec>& codec() const;
  ModelImpl& impl() const { return *impl_; }
  std::shared_ptr<ModelImpl> ptr() const { return impl_; }
  operator engine::Module&() const;  // NOLINT: trainer.fit(model, data) reads like Lightning

 private:
  explicit Model(std::shared_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<ModelImpl> impl_;
};

}  // namespace j2v
