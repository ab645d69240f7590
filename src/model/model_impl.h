#pragma once
// The json2vec network. Each input field becomes one token (field position + state
// embedding + content embedding); pre-LayerNorm transformer blocks mix the tokens; a
// learned query pools them into the record embedding, and one learned query per field
// gathers what decoding that field needs (its "heritage") for its datatype's head.
#include <torch/torch.h>

#include "data/record_buffer.h"
#include "data/record_encoder.h"
#include "engine/module.h"
#include "fields/field_module.h"
#include "model/model_options.h"
#include "nn/learned_query_pooling.h"
#include "nn/transformer_block.h"
#include "schema/schema.h"

namespace j2v {

class RecordBatch;

class ModelImpl : public engine::Module {
 public:
  ModelImpl(Schema schema, ModelOptions options);

  const Schema& schema() const { return schema_; }
  const ModelOptions& options() const { return options_; }
  const std::vector<std::shared_ptr<Field>>& fields() const { return fields_; }
  const RecordEncoder& encoder() const { return *encoder_; }
  bool built() const { return built_; }

  // Learns vocabularies and statistics from training records, freezes them, builds the network.
  void fit_fields(const RecordBuffer& records, const std::vector<int64_t>* rows, int threads);

  torch::Tensor training_step(engine::Batch& batch, int64_t batch_idx) override;
  void validation_step(engine::Batch& batch, int64_t batch_idx) override;
  void test_step(engine::Batch& batch, int64_t batch_idx) override;
  nlohmann::json predict_step(engine::Batch& batch, int64_t batch_idx) override;
  std::vector<engine::OptimizerConfig> configure_optimizers() override;
  void setup(engine::Stage stage) override;
  void on_validation_epoch_start() override { reset_metrics(); }
  void on_validation_epoch_end() override { log_metrics("validate"); }
  void on_test_epoch_start() override { reset_metrics(); }
  void on_test_epoch_end() override { log_metrics("test"); }
  void on_save_checkpoint(nlohmann::json& checkpoint) override;
  void on_load_checkpoint(const nlohmann::json& checkpoint) override;
  std::vector<std::pair<std::string, std::string>> predict_output_types() const override;
  std::shared_ptr<engine::Module> replicate() override;

  // Predictions for raw JSON records, outside any Trainer.
  // batch_size 0: the model's; threads 0: all cores.
  nlohmann::json predict_records(const std::vector<std::string>& records, int64_t batch_size = 0, int threads = 0);

 private:
  struct Outputs {
    torch::Tensor tokens;   // [B, F_in, d] after the blocks
    torch::Tensor record;   // [B, d], when asked for
    torch::Tensor decoded;  // [B, D, d], one vector per decoded field, in decode order
  };
  // Which cells of a field are decoded and scored in this step.
  struct Decode {
    size_t field;
    torch::Tensor rows;  // [B] bool
  };

  void set_fields();  // leaves, encoder and token positions from schema_
  void build_network();
  Outputs forward(const std::vector<FieldTensors>& inputs, const torch::Tensor& pruned,
                  const std::vector<Decode>& decode, bool with_record);
  torch::Tensor evaluation_step(engine::Batch& batch, const std::string& stage);
  // Applies p_mask / p_prune / datatype augmentation; returns the inputs the model sees.
  std::vector<FieldTensors> corrupt(const std::vector<FieldTensors>& truth, torch::Tensor& pruned,
                                    std::vector<Decode>& decode, torch::Generator* generator);
  torch::Tensor loss(const Outputs& out, const std::vector<FieldTensors>& truth, const std::vector<Decode>& decode,
                     bool update_metrics);
  void reset_metrics();
  void log_metrics(const std::string& stage);

  Schema schema_;
  ModelOptions options_;
  std::vector<std::shared_ptr<Field>> fields_;
  std::unique_ptr<RecordEncoder> encoder_;
  std::vector<size_t> input_fields_;     // field indices that are tokens (non-targets)
  std::vector<int64_t> token_of_field_;  // field index -> token position or -1
  bool built_ = false;

  std::vector<std::shared_ptr<FieldModuleImpl>> field_modules_;
  torch::Tensor field_position_;
  torch::nn::Embedding state_embedding_{nullptr};
  std::vector<nn::TransformerBlock> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  nn::LearnedQueryPooling record_pool_{nullptr};
  nn::LearnedQueryPooling decoder_{nullptr};

  std::vector<std::unique_ptr<FieldMetrics>> metrics_;
};

}  // namespace j2v
