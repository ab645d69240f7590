#pragma once
// j2v::Model: a schema turned into a network. A cheap handle (like LibTorch's module
// holders) to a ModelImpl, which is an engine::Module the Trainer can run.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/model_options.h"
#include "schema/schema.h"
#include "schema/selector.h"

namespace j2v {

namespace engine {
class Module;
}
class ModelImpl;
class RecordCodec;

// What a schema change or init_from kept from the model before it. Field state (a
// vocabulary, statistics) and weights carry over for a field at the same address with the
// same type and options; everything else is initialised and learned at the next fit.
struct SchemaChange {
  std::vector<std::string> kept_state;              // fields whose learned state carried over
  std::vector<std::string> refit_state;             // fields that learn their state at the next fit
  std::vector<std::string> kept_parameters;         // tensors carried over whole
  std::vector<std::string> partly_kept_parameters;  // per-field rows carried over, the others initialised
  std::vector<std::string> new_parameters;          // tensors initialised
  // Not every field has its state yet: the network is built, and the weights carried over,
  // when fit learns the rest.
  bool weights_pending = false;
  std::string summary() const;  // a few lines a person can read
};

class SchemaOverride;

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

  // ---- The schema as live model state (seed 000). Selectors: schema/selector.h. Every change
  // returns what it kept; a change that fails (a selector matching nothing, an option a node
  // does not take) throws SchemaError and changes nothing; a change while a Trainer runs this
  // model is refused with std::logic_error. A change replaces the model this handle holds:
  // copies of the handle made before it, and data modules made from the old codec(), keep
  // the model as it was.
  std::vector<SchemaNode> select(const Selector& selector) const;  // read-only
  SchemaChange update(const Selector& selector, const nlohmann::json& changes);
  SchemaChange extend(const Selector& selector, const std::vector<FieldSpec>& fields);
  SchemaChange remove(const Selector& selector);
  // The selected nodes (and everything under a selected branch) forget their weights and state.
  SchemaChange reset(const Selector& selector);
  // update() until the returned guard goes out of scope, then the model as it was, weights
  // included: { auto off = model.override(where("name") == "amount", {{"active", false}}); ... }
  [[nodiscard]] SchemaOverride override(const Selector& selector, const nlohmann::json& changes);
  // Fine-tuning: fields at the same address with the same type and options take their state
  // now and their weights when fit builds the network, from the model in `checkpoint_path`
  // (whose schema may differ: new targets, fields added or removed). --ckpt_path instead
  // resumes one run exactly. Before the first fit only; throws CheckpointError when the
  // checkpoint shares no field with this model.
  SchemaChange init_from(const std::string& checkpoint_path);

  const Schema& schema() const;
  const ModelOptions& options() const;
  // The fields, their learned state and the encoder: what data modules and servers are given
  // (`TableDataModule data(model.codec(), splits)`), so they fit and encode what this model reads.
  const std::shared_ptr<RecordCodec>& codec() const;
  ModelImpl& impl() const { return *impl_; }
  std::shared_ptr<ModelImpl> ptr() const { return impl_; }
  operator engine::Module&() const;  // NOLINT: trainer.fit(model, data) reads like Lightning

 private:
  friend class SchemaOverride;
  explicit Model(std::shared_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
  SchemaChange change_schema(const std::string& action, Schema schema, const std::vector<std::string>& reset);
  std::shared_ptr<ModelImpl> impl_;
};

// Restores the model an override() changed when it goes out of scope.
class SchemaOverride {
 public:
  SchemaOverride(Model& model, std::shared_ptr<ModelImpl> before, SchemaChange change)
      : model_(&model), before_(std::move(before)), change_(std::move(change)) {}
  SchemaOverride(SchemaOverride&& other) noexcept
      : model_(std::exchange(other.model_, nullptr)), before_(std::move(other.before_)), change_(std::move(other.change_)) {}
  SchemaOverride(const SchemaOverride&) = delete;
  SchemaOverride& operator=(const SchemaOverride&) = delete;
  SchemaOverride& operator=(SchemaOverride&&) = delete;
  ~SchemaOverride() {
    if (model_) model_->impl_ = std::move(before_);
  }
  const SchemaChange& change() const { return change_; }

 private:
  Model* model_;
  std::shared_ptr<ModelImpl> before_;
  SchemaChange change_;
};

}  // namespace j2v
