#pragma once
// The json2vec network. Each input cell becomes one token (field position + state
// embedding + content embedding). Branches are processed from the leaves of the schema tree
// up: a branch's tokens (its fields' cells in every slot, and its child branches' pooled
// tokens) go through its own pre-LayerNorm transformer blocks with rotary slot positions,
// and a learned query pools them into one token of the parent. The root's blocks mix the
// root's tokens; a learned query pools them into the record embedding. One learned query
// per field gathers what decoding that field needs (its "heritage": the tokens of its own
// slot and the pooled outputs of every enclosing branch) for its datatype's head.
#include <torch/torch.h>

#include <functional>

#include "data/record_codec.h"
#include "engine/module.h"
#include "fields/field_module.h"
#include "model/model.h"
#include "model/model_options.h"
#include "nn/learned_query_pooling.h"
#include "nn/transformer_block.h"
#include "schema/schema.h"

namespace j2v {

class JsonBuilder;
class RecordBatch;

class ModelImpl : public engine::Module {
 public:
  // The schema's root is named options.name(); a codec is made for it.
  ModelImpl(Schema schema, ModelOptions options);
  // A network for a codec that data modules fit (or have fitted): the network is built once
  // the codec is fitted, in setup().
  ModelImpl(std::shared_ptr<RecordCodec> codec, ModelOptions options);

  const Schema& schema() const { return codec_->schema(); }
  const ModelOptions& options() const { return options_; }
  const std::shared_ptr<RecordCodec>& codec() const { return codec_; }
  const std::vector<std::shared_ptr<Field>>& fields() const { return codec_->fields(); }
  const SchemaTree& tree() const { return codec_->tree(); }
  bool built() const { return built_; }
  // A copy with the same codec and weights, for a serving worker of its own.
  std::shared_ptr<ModelImpl> clone_model() const;

  torch::Tensor training_step(engine::Batch& batch, int64_t batch_idx) override;
  void validation_step(engine::Batch& batch, int64_t batch_idx) override;
  void test_step(engine::Batch& batch, int64_t batch_idx) override;
  nlohmann::json predict_step(engine::Batch& batch, int64_t batch_idx) override;
  std::vector<engine::OptimizerConfig> configure_optimizers() override;
  std::vector<engine::ParameterGroup> parameter_groups() override;
  void setup(engine::Stage stage) override;
  void on_validation_epoch_start() override { reset_metrics(); }
  void on_validation_epoch_end() override { log_metrics("validate"); }
  void on_test_epoch_start() override { reset_metrics(); }
  void on_test_epoch_end() override { log_metrics("test"); }
  void on_save_checkpoint(nlohmann::json& checkpoint) override;
  void on_load_checkpoint(const nlohmann::json& checkpoint) override;
  std::vector<OutputColumn> predict_output_types() const override;
  std::shared_ptr<engine::Module> replicate() override;

  // A model for `schema` that keeps this one's field state and weights where address, type
  // and options still match, except under the `reset` addresses (model/schema_change.cc).
  std::shared_ptr<ModelImpl> with_schema(Schema schema, const std::vector<std::string>& reset,
                                         SchemaChange& report) const;
  // Takes field state from `source` now and its weights when the network is built (setup).
  void init_from(std::shared_ptr<const ModelImpl> source, SchemaChange& report);

  // Whether a branch's item block runs on the slots that hold an item only (the default) or
  // on every slot, padding included: the two give the same outputs for every item, and tests
  // compare them.
  void set_item_packing(bool pack) {
    pack_items_ = pack;
    for (auto& member : members_) member->pack_items_ = pack;
  }

  // Predictions for raw JSON records, outside any Trainer. threads 0: all cores.
  nlohmann::json predict_records(const std::vector<std::string>& records, int64_t batch_size = 256, int threads = 0);

 private:
  struct Outputs {
    std::vector<torch::Tensor> branch;   // per branch b: [B x slots, tokens, d], its items' field tokens
    std::vector<torch::Tensor> padding;  // per branch: [B x slots, tokens] bool
    std::vector<torch::Tensor> slots;    // per branch b > 0: [B x slots, d], each item after the list blocks
    std::vector<torch::Tensor> pooled;   // per branch b > 0: [B x parent_slots, d]
    torch::Tensor record;                // [B, d], when asked for or needed by a branch's decoding
    std::vector<torch::Tensor> decoded;  // per Decode entry: [B x slots, d]
  };
  // Which cells of a field are decoded and scored in this step.
  struct Decode {
    size_t field;
    torch::Tensor rows;  // [B x slots] bool
  };
  // A branch's network; the root's keeps the names of a flat model's parameters.
  struct BranchNet {
    std::vector<size_t> inputs;  // input leaves, in token order (child branches follow them)
    torch::Tensor position;      // [tokens per slot, d]
    nn::TransformerBlock item_block{nullptr};       // branches: attention within each item first,
    nn::LearnedQueryPooling slot_pool{nullptr};     // each item pooled into one slot token,
    std::vector<nn::TransformerBlock> blocks;       // then blocks across the list's slot tokens
    torch::nn::LayerNorm norm{nullptr};
    nn::LearnedQueryPooling pool{nullptr};  // the root's is record_pool_
  };

  void set_fields();  // token positions of the codec's leaves
  // Copies the weights of `from` that still fit this network (built) into it: whole tensors by
  // name and shape; per-field rows (state embedding, token positions, decoder queries) by
  // address. Nothing under the `reset` addresses.
  void adopt_weights(const ModelImpl& from, const std::vector<std::string>& reset, SchemaChange& report);
  // The address of each token of branch b: its input fields', then its child branches'.
  std::vector<std::string> token_addresses(size_t b) const;
  void build_network();
  Outputs forward(const std::vector<FieldTensors>& inputs, const std::vector<torch::Tensor>& present,
                  const torch::Tensor& pruned, const std::vector<Decode>& decode, bool with_record);
  torch::Tensor evaluation_step(engine::Batch& batch, const std::string& stage);
  // Applies p_mask / p_prune / datatype augmentation; returns the inputs the model sees.
  std::vector<FieldTensors> corrupt(const std::vector<FieldTensors>& truth, const std::vector<torch::Tensor>& present,
                                    torch::Tensor& pruned, std::vector<Decode>& decode, torch::Generator* generator);
  // Writes the payload of one record's cells of a branch: nested lists, one level per branch
  // from the root down to `branch`, each as long as the list it came from; `value` writes a slot's.
  void write_nested(const RecordBatch& batch, int64_t row, int branch, JsonBuilder& out,
                    const std::function<void(int64_t slot)>& value) const;
  int64_t batch_rows(const std::vector<FieldTensors>& cells) const;
  // Per decode entry, the field head's float32 logits [rows, kNumCellStates + content width]
  // for the entry's decoded rows (rows_only) or for every cell; undefined where none is decoded.
  std::vector<torch::Tensor> head_logits(const Outputs& out, const std::vector<Decode>& decode, bool rows_only);
  // The ensemble's logits: the mean of every member's head_logits on the same inputs. `first`
  // receives this network's outputs (its embeddings are the ensemble's).
  std::vector<torch::Tensor> ensemble_logits(const std::vector<FieldTensors>& inputs,
                                             const std::vector<torch::Tensor>& present, const torch::Tensor& pruned,
                                             const std::vector<Decode>& decode, bool with_record, bool rows_only,
                                             Outputs& first);
  torch::Tensor loss(const std::vector<torch::Tensor>& logits, const std::vector<FieldTensors>& truth,
                     const std::vector<Decode>& decode, bool update_metrics);
  // Networks 1..ensemble-1 (this one is the first): same codec and layout, own weights, built
  // and registered as "member1", ... beside this network's modules.
  void build_members();
  void reset_metrics();
  void log_metrics(const std::string& stage);

  std::shared_ptr<RecordCodec> codec_;
  ModelOptions options_;
  std::vector<int64_t> input_index_;     // field -> index among all input (non-target) leaves, or -1
  int64_t n_inputs_ = 0;                 // input leaves, all branches
  std::vector<int64_t> token_of_field_;  // field -> token position within its branch's slot, or -1
  bool built_ = false;
  bool pack_items_ = true;
  // init_from, or a schema change made before the network existed: whose weights setup() adopts.
  std::shared_ptr<const ModelImpl> weight_source_;
  std::vector<std::string> weight_reset_;

  std::vector<std::shared_ptr<FieldModuleImpl>> field_modules_;
  torch::nn::Embedding state_embedding_{nullptr};
  std::vector<BranchNet> nets_;  // per branch
  nn::LearnedQueryPooling record_pool_{nullptr};
  nn::LearnedQueryPooling decoder_{nullptr};

  std::vector<std::shared_ptr<ModelImpl>> members_;

  std::vector<std::unique_ptr<FieldMetrics>> metrics_;
};

}  // namespace j2v
