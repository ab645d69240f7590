// Number: a real value. Optionally log-scaled (sign(x)·ln(1+|x|), for skewed values such as
// prices), normalised by training mean/std (frozen after fit), embedded with trainable
// periodic features (sin/cos of learned frequencies, then Linear + ReLU: the "PLR"
// embedding that closes most of the gap to tree ensembles on tabular data), decoded to a
// normalised value with an mse | mae | huber loss. Metrics and payloads are in the
// value's own units, whatever the scaling.
#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "fields/field_module.h"
#include "fields/option_checks.h"
#include "fields/registry.h"
#include "fields/string_rules.h"

namespace j2v {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Normalised values are clipped so a wild outlier cannot blow up the periodic features.
constexpr float kClip = 50.0f;

// The stated rules for what a number cell can hold:
//   number -> valued; true/false -> 1/0; a numeric string ("12.5") -> valued;
//   "NaN" -> null; "inf"/"-Infinity" -> other; any other string -> other;
//   object/array -> error (the record does not match the schema).
CellState parse_number(const Scalar& v, double& out) {
  switch (v.kind) {
    case Scalar::Kind::kNumber:
      out = v.number;
      if (std::isnan(out)) return CellState::kNull;
      return std::isfinite(out) ? CellState::kValued : CellState::kOther;
    case Scalar::Kind::kBool:
      out = v.boolean ? 1.0 : 0.0;
      return CellState::kValued;
    case Scalar::Kind::kString: {
      std::string_view s = trim_spaces(v.text);
      if (equals_ignore_case(s, "nan")) return CellState::kNull;
      if (!s.empty() && s.front() == '+') s.remove_prefix(1);
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return CellState::kOther;
      return std::isfinite(out) ? CellState::kValued : CellState::kOther;
    }
    case Scalar::Kind::kObject:
    case Scalar::Kind::kArray:
      throw EncodeError(fmt::format("is {}, but the field is a number", v.kind_name()));
    default:
      return CellState::kNull;
  }
}

// transform: log. Signed, so negative values keep their order and 0 stays 0.
double signed_log1p(double x) { return std::copysign(std::log1p(std::abs(x)), x); }
double signed_expm1(double y) { return std::copysign(std::expm1(std::abs(y)), y); }

class NumberStats : public FieldStats {
 public:
  explicit NumberStats(bool log_scale) : log_scale_(log_scale) {}
  void observe(const Scalar& value) override {
    double x;
    if (parse_number(value, x) != CellState::kValued) return;
    if (log_scale_) x = signed_log1p(x);
    ++count;
    double delta = x - mean;  // Welford: stable for large counts
    mean += delta / count;
    m2 += delta * (x - mean);
  }
  void merge(const FieldStats& other_base) override {
    const auto& other = static_cast<const NumberStats&>(other_base);
    if (other.count == 0) return;
    double n = count + other.count;
    double delta = other.mean - mean;
    m2 += other.m2 + delta * delta * count * other.count / n;
    mean += delta * other.count / n;
    count = n;
  }
  double count = 0, mean = 0, m2 = 0;

 private:
  bool log_scale_;
};

class NumberField : public Field {
 public:
  NumberField(FieldSpec spec, Address address)
      : Field(std::move(spec), std::move(address)), log_scale_(this->spec().options.at("transform") == "log") {}
  bool uses_values() const override { return true; }
  bool uses_indices() const override { return false; }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<NumberStats>(log_scale_); }

  void fit(const FieldStats& base) override {
    const auto& stats = static_cast<const NumberStats&>(base);
    mean_ = stats.count > 0 ? stats.mean : 0.0;
    double var = stats.count > 1 ? stats.m2 / (stats.count - 1) : 0.0;
    // A value near the double's limit makes the variance infinite; such a field keeps its
    // values unscaled rather than turning every cell into NaN.
    if (!std::isfinite(mean_) || !std::isfinite(var)) mean_ = 0.0, var = 1.0;
    std_ = var > 1e-24 ? std::sqrt(var) : 1.0;
    count_ = stats.count;
    mark_fitted();
  }

  nlohmann::json state_json() const override {
    return {{"mean", mean_}, {"std", std_}, {"count", count_}};
  }
  void load_state_json(const nlohmann::json& s) override {
    mean_ = s.at("mean").get<double>();
    std_ = s.at("std").get<double>();
    count_ = s.value("count", 0.0);
    mark_fitted();
  }

  double mean() const { return mean_; }
  double std() const { return std_; }
  // A normalised value (the encoder's or a prediction) in the value's own units.
  double to_original(double normalised) const {
    double y = std::max(-double(kClip), std::min(double(kClip), normalised)) * std_ + mean_;
    return log_scale_ ? signed_expm1(y) : y;
  }
  torch::Tensor to_original(const torch::Tensor& normalised) const {
    auto y = normalised.to(torch::kFloat64).clamp(-kClip, kClip) * std_ + mean_;
    return log_scale_ ? y.sign() * torch::expm1(y.abs()) : y;
  }

  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    double x = 0;
    CellState state = parse_number(value, x);
    column.state[row] = static_cast<uint8_t>(state);
    if (state == CellState::kValued) {
      if (log_scale_) x = signed_log1p(x);
      float z = static_cast<float>((x - mean_) / std_);
      column.values[row] = std::max(-kClip, std::min(kClip, z));
    }
  }

 private:
  bool log_scale_;
  double mean_ = 0.0, std_ = 1.0, count_ = 0.0;
};

class NumberMetrics : public FieldMetrics {
 public:
  explicit NumberMetrics(const NumberField& field) : field_(field) {}
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto err = field_.to_original(content.select(1, 0)) -
               field_.to_original(truth.values.index_select(0, rows).select(1, 0));
    abs_sum_ += err.abs().sum().item<double>();
    sq_sum_ += err.square().sum().item<double>();
    n_ += static_cast<double>(err.size(0));
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    return {{"mae", abs_sum_ / n_}, {"rmse", std::sqrt(sq_sum_ / n_)}};
  }

 private:
  const NumberField& field_;
  double abs_sum_ = 0, sq_sum_ = 0, n_ = 0;
};

class NumberModuleImpl : public FieldModuleImpl {
 public:
  NumberModuleImpl(const NumberField& field, const FieldModuleOptions& options)
      : FieldModuleImpl(field, options), number_(field) {
    int64_t k = field.spec().options.at("n_frequencies").get<int64_t>();
    double scale = field.spec().options.at("frequency_scale").get<double>();
    loss_ = field.spec().options.at("loss").get<std::string>();
    frequencies_ = register_parameter("frequencies", torch::randn({k}) * scale);
    projection_ = register_module("projection", torch::nn::Linear(2 * k, options.d_model));
    build_head(options.d_model);
  }
  int64_t content_width() const override { return 1; }

  torch::Tensor embed(const FieldTensors& cells) override {
    auto angles = cells.values * frequencies_.unsqueeze(0) * (2.0 * kPi);  // [B, k]
    return torch::relu(projection_(torch::cat({torch::sin(angles), torch::cos(angles)}, 1)));
  }

  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth,
                             const torch::Tensor& rows) override {
    auto pred = content.select(1, 0);
    auto target = truth.values.index_select(0, rows).select(1, 0);
    auto none = torch::nn::functional::SmoothL1LossFuncOptions().reduction(torch::kNone);
    if (loss_ == "mae") return (pred - target).abs();
    if (loss_ == "huber") return torch::nn::functional::smooth_l1_loss(pred, target, none);
    return (pred - target).square();
  }

  std::unique_ptr<FieldMetrics> new_metrics() const override {
    return std::make_unique<NumberMetrics>(number_);
  }

  ValueType content_type() const override { return ValueType::structure({{"value", ValueType::float64()}}); }

  nlohmann::json content_payload(const float* content) const override {
    return {{"value", number_.to_original(content[0])}};
  }

 private:
  const NumberField& number_;
  std::string loss_;
  torch::Tensor frequencies_;
  torch::nn::Linear projection_{nullptr};
};

std::shared_ptr<FieldModuleImpl> NumberField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<NumberModuleImpl>(*this, options);
}

}  // namespace

Datatype number_datatype() {
  return datatype_of<NumberField>(
      "number",
      "a real value; strings that parse as numbers are accepted, 'NaN' is null",
      {{"loss", "mse"}, {"n_frequencies", 16}, {"frequency_scale", 1.0}, {"transform", "none"}},
      [](const FieldSpec& spec) {
        options::one_of(spec, "loss", {"mse", "mae", "huber"});
        options::one_of(spec, "transform", {"none", "log"});
        options::integer_in(spec, "n_frequencies", 1, 512);
        const auto& scale = spec.options.at("frequency_scale");
        if (!scale.is_number() || !(scale.get<double>() > 0)) options::fail(spec, "frequency_scale", "must be a positive number");
      });
}

}  // namespace j2v
