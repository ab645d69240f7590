#pragma once
// The network side of a datatype: how a cell's content becomes a d_model vector, how a
// decoded vector becomes state logits and content, the content loss, metrics and payload.
#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>

#include "base/value_type.h"
#include "fields/field.h"

namespace j2v {

// One field's slice of a batch, as tensors.
struct FieldTensors {
  torch::Tensor state;    // [B] int64
  torch::Tensor values;   // [B, width] float32, when the datatype uses values
  torch::Tensor indices;  // [B, width] int64, when the datatype uses indices
};

// Accumulates a field's metrics over an epoch; exact (not a mean of batch means).
class FieldMetrics {
 public:
  virtual ~FieldMetrics() = default;
  // content: [N, content_width] head outputs for rows whose true state is valued.
  virtual void update(const torch::Tensor& content, const FieldTensors& truth,
                      const torch::Tensor& rows) = 0;
  virtual std::map<std::string, double> compute() const = 0;  // {"accuracy": .., ...}
};

class FieldModuleImpl : public torch::nn::Module {
 public:
  FieldModuleImpl(const Field& field, const FieldModuleOptions& options);

  const Field& field() const { return field_; }
  virtual int64_t content_width() const = 0;

  // [B, d] content embedding; rows that are not valued are zeroed by the caller.
  virtual torch::Tensor embed(const FieldTensors& cells) = 0;
  // [B, d] decoded vector -> [B, kNumCellStates + content_width()]
  torch::Tensor head(const torch::Tensor& decoded);
  // Per-row content loss [N] for the given rows (true state valued).
  virtual torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth,
                                     const torch::Tensor& rows) = 0;
  virtual std::unique_ptr<FieldMetrics> new_metrics() const = 0;
  // Training-time input noise owned by the datatype (e.g. category's p_unavailable).
  virtual void augment_for_training(FieldTensors& cells) {}
  // The payload's "content" for one row, from that row's content outputs (CPU, float).
  virtual nlohmann::json content_payload(const float* content) const = 0;
  // The type of content_payload's value, for typed output (Parquet).
  virtual ValueType content_type() const = 0;

 protected:
  const Field& field_;
  torch::nn::LayerNorm head_norm_{nullptr};
  torch::nn::Linear head_hidden_{nullptr};
  torch::nn::Linear head_out_{nullptr};
  void build_head(int64_t d_model);
};

}  // namespace j2v
