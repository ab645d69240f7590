// Boolean: true or false. Embedded by a two-row table, decoded to one logit with binary
// cross-entropy; the payload gives the value (probability >= threshold) and P(true).
#include <fmt/format.h>

#include <cmath>

#include "base/json_read.h"
#include "fields/field_module.h"
#include "fields/option_checks.h"
#include "fields/registry.h"
#include "fields/roc_auc.h"
#include "fields/string_rules.h"

namespace j2v {
namespace {

// The stated rules: true/false; the numbers 1/0; the strings true/false, yes/no, y/n, t/f,
// 1/0 in any case -> valued. Any other number or string -> other. Object/array -> error.
CellState parse_boolean(const Scalar& v, bool& out) {
  switch (v.kind) {
    case Scalar::Kind::kBool:
      out = v.boolean;
      return CellState::kValued;
    case Scalar::Kind::kNumber:
      if (v.number == 1.0 || v.number == 0.0) {
        out = v.number == 1.0;
        return CellState::kValued;
      }
      return CellState::kOther;
    case Scalar::Kind::kString: {
      std::string_view s = trim_spaces(v.text);
      for (const char* t : {"true", "yes", "y", "t", "1"})
        if (equals_ignore_case(s, t)) return out = true, CellState::kValued;
      for (const char* f : {"false", "no", "n", "f", "0"})
        if (equals_ignore_case(s, f)) return out = false, CellState::kValued;
      return CellState::kOther;
    }
    case Scalar::Kind::kObject:
    case Scalar::Kind::kArray:
      throw EncodeError(fmt::format("is {}, but the field is a boolean", v.kind_name()));
    default:
      return CellState::kNull;
  }
}

class BooleanStats : public FieldStats {
 public:
  void observe(const Scalar& value) override {
    bool b;
    if (parse_boolean(value, b) != CellState::kValued) return;
    ++count;
    if (b) ++trues;
  }
  void merge(const FieldStats& other_base) override {
    const auto& other = static_cast<const BooleanStats&>(other_base);
    count += other.count;
    trues += other.trues;
  }
  int64_t count = 0, trues = 0;
};

class BooleanField : public Field {
 public:
  using Field::Field;
  bool uses_values() const override { return true; }
  bool uses_indices() const override { return false; }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<BooleanStats>(); }
  void fit(const FieldStats& base) override {
    const auto& stats = static_cast<const BooleanStats&>(base);
    count_ = stats.count;
    trues_ = stats.trues;
    mark_fitted();
  }
  nlohmann::json state_json() const override { return {{"count", count_}, {"trues", trues_}}; }
  void load_state_json(const nlohmann::json& s) override {
    count_ = read_integer(s, "count", 0);
    trues_ = read_integer(s, "trues", 0);
    mark_fitted();
  }
  // log-odds of true in training: the head's starting bias, so epoch one is not spent on it.
  double prior_logit() const {
    double p = (trues_ + 1.0) / (count_ + 2.0);
    return std::log(p / (1 - p));
  }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    bool b = false;
    CellState state = parse_boolean(value, b);
    column.state[row] = static_cast<uint8_t>(state);
    if (state == CellState::kValued) column.values[row] = b ? 1.0f : 0.0f;
  }

 private:
  int64_t count_ = 0, trues_ = 0;
};

class BooleanMetrics : public FieldMetrics {
 public:
  explicit BooleanMetrics(double threshold) : threshold_(threshold) {}
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto logit = content.select(1, 0).contiguous();
    auto target = truth.values.index_select(0, rows).select(1, 0).contiguous();
    auto p = torch::sigmoid(logit);
    correct_ += ((p >= threshold_).to(torch::kFloat) == target).sum().item<double>();
    log_loss_ += torch::nn::functional::binary_cross_entropy_with_logits(
                     logit, target, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum))
                     .item<double>();
    n_ += static_cast<double>(target.size(0));
    const float* s = p.data_ptr<float>();
    const float* y = target.data_ptr<float>();
    for (int64_t i = 0; i < target.size(0); ++i) scored_.emplace_back(s[i], y[i] > 0.5f);
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    std::map<std::string, double> out{{"accuracy", correct_ / n_}, {"log_loss", log_loss_ / n_}};
    double auc = roc_auc(scored_);
    if (auc >= 0) out["auc"] = auc;
    return out;
  }

 private:
  double threshold_, correct_ = 0, log_loss_ = 0, n_ = 0;
  std::vector<std::pair<float, bool>> scored_;
};

class BooleanModuleImpl : public FieldModuleImpl {
 public:
  BooleanModuleImpl(const BooleanField& field, const FieldModuleOptions& options) : FieldModuleImpl(field, options) {
    threshold_ = field.spec().options.at("threshold").get<double>();
    embedding_ = register_module("embedding", torch::nn::Embedding(2, options.d_model));
    build_head(options.d_model);
    torch::NoGradGuard no_grad;
    head_out_->bias[kNumCellStates].fill_(field.prior_logit());
  }
  int64_t content_width() const override { return 1; }
  torch::Tensor embed(const FieldTensors& cells) override { return embedding_(cells.values.select(1, 0).to(torch::kLong)); }
  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    return torch::nn::functional::binary_cross_entropy_with_logits(
        content.select(1, 0), truth.values.index_select(0, rows).select(1, 0),
        torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  }
  std::unique_ptr<FieldMetrics> new_metrics() const override { return std::make_unique<BooleanMetrics>(threshold_); }
  ValueType content_type() const override {
    return ValueType::structure({{"value", ValueType::boolean()}, {"probability", ValueType::float64()}});
  }
  nlohmann::json content_payload(const float* content) const override {
    double p = 1.0 / (1.0 + std::exp(-static_cast<double>(content[0])));
    return {{"value", p >= threshold_}, {"probability", p}};
  }

 private:
  double threshold_ = 0.5;
  torch::nn::Embedding embedding_{nullptr};
};

std::shared_ptr<FieldModuleImpl> BooleanField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<BooleanModuleImpl>(*this, options);
}

}  // namespace

Datatype boolean_datatype() {
  return datatype_of<BooleanField>(
      "boolean",
      "true or false; also 1/0 and the strings yes/no, y/n, t/f, true/false, 1/0",
      {{"threshold", 0.5}},
      [](const FieldSpec& spec) { options::number_in(spec, "threshold", 0.0, 1.0); });
}

}  // namespace j2v
