#pragma once
// What the hashed input datatypes (text, hash) share: their cells are bucket indices computed
// from the value alone, so nothing is learned from the data before training and there is no
// state to save; and they are inputs only, so their content is never decoded or scored.
#include "fields/field.h"
#include "fields/field_module.h"

namespace j2v {

// The text a hashed datatype reads: a string as written, a number as written (account 1234
// and "1234" are the same), a boolean as true/false; objects and lists are errors.
inline std::string_view hashed_text(const Scalar& value, const char* datatype) {
  switch (value.kind) {
    case Scalar::Kind::kString:
    case Scalar::Kind::kNumber: return value.text;
    case Scalar::Kind::kBool: return value.boolean ? "true" : "false";
    default: throw EncodeError(std::string("is ") + value.kind_name() + ", but the field is " + datatype);
  }
}

class NothingToCollect : public FieldStats {
 public:
  void observe(const Scalar&) override {}
  void merge(const FieldStats&) override {}
};

class HashedInputField : public Field {
 public:
  using Field::Field;
  bool uses_values() const override { return false; }
  bool uses_indices() const override { return true; }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<NothingToCollect>(); }
  void fit(const FieldStats&) override { mark_fitted(); }
  nlohmann::json state_json() const override { return nlohmann::json::object(); }
  void load_state_json(const nlohmann::json&) override { mark_fitted(); }
};

class NoContentMetrics : public FieldMetrics {
 public:
  void update(const torch::Tensor&, const FieldTensors&, const torch::Tensor&) override {}
  std::map<std::string, double> compute() const override { return {}; }
};

// A module whose head predicts only the cell's state; `embed` is the datatype's own.
class HashedInputModuleImpl : public FieldModuleImpl {
 public:
  using FieldModuleImpl::FieldModuleImpl;
  int64_t content_width() const override { return 0; }
  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors&, const torch::Tensor&) override {
    return torch::zeros({content.size(0)});
  }
  std::unique_ptr<FieldMetrics> new_metrics() const override { return std::make_unique<NoContentMetrics>(); }
  ValueType content_type() const override { return ValueType::structure({{"value", ValueType::string()}}); }
  nlohmann::json content_payload(const float*) const override { return nullptr; }
};

}  // namespace j2v
