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

class Model {
 public:
  static Model from_schema(std::vector<FieldSpec> fields, ModelOptions options = {});
  static Model from_schema(Schema schema, ModelOptions options = {});
  // Everything needed to predict comes from the checkpoint file alone.
  static Model load(const std::string& checkpoint_path);

  // One payload per record, in input order: {"inputs": ..., "predictions": {address: ...}}.
  // A field given as "<MASK>" is imputed.
  nlohmann::json predict(const std::vector<std::string>& json_records) const;

  const Schema& schema() const;
  const ModelOptions& options() const;
  ModelImpl& impl() const { return *impl_; }
  std::shared_ptr<ModelImpl> ptr() const { return impl_; }
  operator engine::Module&() const;  // NOLINT: trainer.fit(model, data) reads like Lightning

 private:
  explicit Model(std::shared_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<ModelImpl> impl_;
};

}  // namespace j2v
