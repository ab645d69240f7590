// Entity: an identifier whose only meaning is "same or different within this record" (the
// seller of each line item, the account each transaction touched). Labels are re-indexed
// per record in order of first appearance: the first distinct value is entity 1, the next
// 2, up to `max_entities`; later distinct values share index 0 ("another"). So the model
// learns patterns like "two items from the same seller" without a vocabulary, and an id
// never seen in training is as usable as any other. Decoded with cross-entropy over the
// indices; the payload's value is that index (null for "another"). Indices are given at
// encoding, before training hides cells, so the visible ones can betray whether a hidden
// cell was a new entity: reconstruction scores under masking are optimistic.
#include <fmt/format.h>

#include <algorithm>

#include "fields/field_module.h"
#include "fields/label_text.h"
#include "fields/option_checks.h"
#include "fields/registry.h"

namespace j2v {
namespace {

class EntityStats : public FieldStats {
 public:
  void observe(const Scalar& value) override {
    if (value.kind == Scalar::Kind::kObject || value.kind == Scalar::Kind::kArray) label_text(value, "an entity");
  }
  void merge(const FieldStats&) override {}
};

class EntityField : public Field {
 public:
  using Field::Field;
  bool uses_values() const override { return false; }
  bool uses_indices() const override { return true; }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<EntityStats>(); }
  void fit(const FieldStats&) override { mark_fitted(); }  // nothing to learn: ids are per record
  nlohmann::json state_json() const override { return nlohmann::json::object(); }
  void load_state_json(const nlohmann::json&) override { mark_fitted(); }
  int64_t max_entities() const { return spec_.options.at("max_entities").get<int64_t>(); }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

  void encode_record(const Scalar* values, const uint8_t* present, int64_t slots, Column& column,
                     size_t first) const override {
    Field::encode_record(values, present, slots, column, first);  // states; rejects objects and lists
    thread_local std::vector<std::string_view> seen;  // the record's first max_entities distinct labels
    seen.clear();
    const auto limit = static_cast<size_t>(max_entities());
    for (int64_t s = 0; s < slots; ++s) {
      size_t cell = first + static_cast<size_t>(s);
      if (column.state[cell] != static_cast<uint8_t>(CellState::kValued)) continue;
      std::string_view label = label_text(values[s], "an entity");
      auto it = std::find(seen.begin(), seen.end(), label);
      int64_t index = 0;
      if (it != seen.end()) {
        index = static_cast<int64_t>(it - seen.begin()) + 1;
      } else if (seen.size() < limit) {
        seen.push_back(label);
        index = static_cast<int64_t>(seen.size());
      }
      column.indices[cell] = index;
    }
  }

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    label_text(value, "an entity");
    column.state[row] = static_cast<uint8_t>(CellState::kValued);
  }
};

class EntityMetrics : public FieldMetrics {
 public:
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = truth.indices.index_select(0, rows).select(1, 0);
    correct_ += (content.argmax(1) == target).sum().item<double>();
    n_ += static_cast<double>(target.size(0));
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    return {{"accuracy", correct_ / n_}};
  }

 private:
  double correct_ = 0, n_ = 0;
};

class EntityModuleImpl : public FieldModuleImpl {
 public:
  EntityModuleImpl(const EntityField& field, const FieldModuleOptions& options)
      : FieldModuleImpl(field, options), classes_(field.max_entities() + 1) {
    embedding_ = register_module("embedding", torch::nn::Embedding(classes_, options.d_model));
    build_head(options.d_model);
  }
  int64_t content_width() const override { return classes_; }
  torch::Tensor embed(const FieldTensors& cells) override { return embedding_(cells.indices.select(1, 0)); }
  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    return torch::nn::functional::cross_entropy(content, truth.indices.index_select(0, rows).select(1, 0),
                                                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  }
  std::unique_ptr<FieldMetrics> new_metrics() const override { return std::make_unique<EntityMetrics>(); }
  ValueType content_type() const override {
    return ValueType::structure({{"value", ValueType::int64()}, {"probability", ValueType::float64()}});
  }
  nlohmann::json content_payload(const float* logits) const override {
    int64_t best = std::max_element(logits, logits + classes_) - logits;
    double total = 0;
    for (int64_t k = 0; k < classes_; ++k) total += std::exp(logits[k] - logits[best]);
    return {{"value", best == 0 ? nlohmann::json(nullptr) : nlohmann::json(best)}, {"probability", 1.0 / total}};
  }

 private:
  int64_t classes_;
  torch::nn::Embedding embedding_{nullptr};
};

std::shared_ptr<FieldModuleImpl> EntityField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<EntityModuleImpl>(*this, options);
}

}  // namespace

Datatype entity_datatype() {
  return datatype_of<EntityField>(
      "entity",
      "an id meaning only same/different within one record: re-indexed per record by first appearance",
      {{"max_entities", 32}},
      [](const FieldSpec& spec) { options::integer_in(spec, "max_entities", 1, 4096); });
}

}  // namespace j2v
