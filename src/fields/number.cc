// Number: a real value. Optionally log-scaled (sign(x)·ln(1+|x|), for skewed values such as
// prices), normalised by training mean/std (frozen after fit), decoded to a normalised value
// with an mse | mae | huber loss. Metrics and payloads are in the value's own units,
// whatever the scaling.
//
// As an input it is embedded (option `embedding`) with
//   periodic:  sin/cos of learned frequencies of the normalised value, then Linear + ReLU
//              (the "PLR" embedding of Gorishniy et al. 2022);
//   piecewise: piecewise-linear encoding over the training quantiles (same paper): the
//              value's position between quantile knots, n_bins features each in [0, 1],
//              then Linear + ReLU. It sees ranks, not magnitudes, so heavy tails and
//              integer codes cost it nothing;
//   both:      the two feature sets side by side under one projection.
// With `linear_term` (default) the standardised value, clamped to [-5, 5], is one more feature
// under the projection: quantile features alone bend a linear trend into steps between
// knots, and a trend that runs past the last training quantile is lost to them.
// A cell therefore carries two floats: the normalised value (the target of the loss) and
// its quantile position u in [0, 1] (the piecewise encoding's input).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "fields/field_module.h"
#include "fields/option_checks.h"
#include "fields/registry.h"
#include "fields/string_rules.h"

namespace j2v {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLinearTermBound = 5.0;  // standard deviations
// Normalised values are clipped so a wild outlier cannot blow up the periodic features.
constexpr float kClip = 50.0f;
// Values kept for the quantiles: enough for 1/1000 resolution, small enough to sort at fit.
constexpr size_t kQuantileSample = 20000;

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
    keep_for_quantiles(x);
  }
  void merge(const FieldStats& other_base) override {
    const auto& other = static_cast<const NumberStats&>(other_base);
    if (other.count == 0) return;
    double n = count + other.count;
    double delta = other.mean - mean;
    m2 += other.m2 + delta * delta * count * other.count / n;
    merge_sample(other.sample, other.count / n);
    mean += delta * other.count / n;
    count = n;
  }
  double count = 0, mean = 0, m2 = 0;
  std::vector<double> sample;  // a uniform sample of the (transformed) values, for quantiles

 private:
  // Each side's sample stands for the values that side saw: when the two do not fit in one
  // sample, each keeps a share of it in proportion to its count (a streamed chunk of 2,048
  // values must not weigh like the 20,000 that stand for everything before it), taken at an
  // even stride, so runs repeat.
  void merge_sample(const std::vector<double>& theirs, double their_share) {
    if (sample.size() + theirs.size() <= kQuantileSample) {  // both still hold every value seen
      sample.insert(sample.end(), theirs.begin(), theirs.end());
      return;
    }
    size_t keep_theirs = std::min(theirs.size(), static_cast<size_t>(std::llround(their_share * kQuantileSample)));
    size_t keep_ours = std::min(sample.size(), kQuantileSample - keep_theirs);
    auto strided = [](const std::vector<double>& from, size_t n, std::vector<double>& to) {
      double stride = static_cast<double>(from.size()) / static_cast<double>(std::max<size_t>(n, 1));
      for (size_t i = 0; i < n; ++i) to.push_back(from[static_cast<size_t>(static_cast<double>(i) * stride)]);
    };
    std::vector<double> merged;
    merged.reserve(keep_ours + keep_theirs);
    strided(sample, keep_ours, merged);
    strided(theirs, keep_theirs, merged);
    sample.swap(merged);
  }
  // Reservoir sampling with a hash of the count as the random draw, so a fit repeats itself.
  void keep_for_quantiles(double x) {
    if (sample.size() < kQuantileSample) {
      sample.push_back(x);
      return;
    }
    uint64_t h = static_cast<uint64_t>(count) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 31, h *= 0xbf58476d1ce4e5b9ull, h ^= h >> 27;
    uint64_t j = h % static_cast<uint64_t>(count);
    if (j < kQuantileSample) sample[j] = x;
  }
  bool log_scale_;
};

// Knots at the 0, 1/n, ..., 1 quantiles of the sample, repeated values once.
std::vector<double> quantile_knots(std::vector<double> sample, int64_t n_bins) {
  std::vector<double> knots;
  if (sample.empty()) return knots;
  std::sort(sample.begin(), sample.end());
  for (int64_t i = 0; i <= n_bins; ++i) {
    double q = static_cast<double>(i) / static_cast<double>(n_bins);
    double v = sample[static_cast<size_t>(std::llround(q * static_cast<double>(sample.size() - 1)))];
    if (knots.empty() || v > knots.back()) knots.push_back(v);
  }
  return knots;
}

class NumberField : public Field {
 public:
  NumberField(FieldSpec spec, Address address)
      : Field(std::move(spec), std::move(address)),
        log_scale_(this->spec().options.at("transform") == "log"),
        n_bins_(this->spec().options.at("n_bins").get<int64_t>()) {}
  bool uses_values() const override { return true; }
  int64_t width() const override { return 2; }  // the normalised value, its quantile position
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
    knots_ = quantile_knots(stats.sample, n_bins_);
    mark_fitted();
  }

  nlohmann::json state_json() const override {
    return {{"mean", mean_}, {"std", std_}, {"count", count_}, {"quantiles", knots_}};
  }
  void load_state_json(const nlohmann::json& s) override {
    mean_ = s.at("mean").get<double>();
    std_ = s.at("std").get<double>();
    count_ = s.value("count", 0.0);
    knots_.clear();
    // Saved before quantiles existed: positions then come from the normal curve instead.
    if (s.contains("quantiles")) {
      const auto& q = s.at("quantiles");
      if (!q.is_array()) throw std::invalid_argument("number state: 'quantiles' must be a list of numbers");
      for (const auto& v : q) {
        if (!v.is_number() || !std::isfinite(v.get<double>()) || (!knots_.empty() && v.get<double>() <= knots_.back()))
          throw std::invalid_argument("number state: 'quantiles' must be finite and increasing");
        knots_.push_back(v.get<double>());
      }
    }
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
      float z = std::max(-kClip, std::min(kClip, static_cast<float>((x - mean_) / std_)));
      column.values[row * 2] = z;
      column.values[row * 2 + 1] = static_cast<float>(quantile_position(x, z));
    }
  }

 private:
  // Where x lies among the knots, linear between them: 0 at the smallest, 1 at the largest.
  double quantile_position(double x, float z) const {
    if (knots_.empty()) return 0.5 * std::erfc(-z / std::sqrt(2.0));
    if (knots_.size() == 1) return x < knots_[0] ? 0.0 : x > knots_[0] ? 1.0 : 0.5;
    if (x <= knots_.front()) return 0.0;
    if (x >= knots_.back()) return 1.0;
    size_t i = static_cast<size_t>(std::upper_bound(knots_.begin(), knots_.end(), x) - knots_.begin()) - 1;
    double within = (x - knots_[i]) / (knots_[i + 1] - knots_[i]);
    return (static_cast<double>(i) + within) / static_cast<double>(knots_.size() - 1);
  }

  bool log_scale_;
  int64_t n_bins_;
  double mean_ = 0.0, std_ = 1.0, count_ = 0.0;
  std::vector<double> knots_;
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
    const auto& o = field.spec().options;
    std::string embedding = o.at("embedding").get<std::string>();
    periodic_ = embedding != "piecewise";
    n_bins_ = embedding != "periodic" ? o.at("n_bins").get<int64_t>() : 0;
    int64_t k = periodic_ ? o.at("n_frequencies").get<int64_t>() : 0;
    linear_term_ = o.at("linear_term").get<bool>();
    loss_ = o.at("loss").get<std::string>();
    if (periodic_)
      frequencies_ = register_parameter("frequencies", torch::randn({k}) * o.at("frequency_scale").get<double>());
    projection_ = register_module("projection", torch::nn::Linear(2 * k + n_bins_ + (linear_term_ ? 1 : 0), options.d_model));
    if (n_bins_ > 0) bin_starts_ = register_buffer("bin_starts", torch::arange(n_bins_, torch::kFloat));
    build_head(options.d_model);
  }
  int64_t content_width() const override { return 1; }

  torch::Tensor embed(const FieldTensors& cells) override {
    std::vector<torch::Tensor> features;
    if (periodic_) {
      auto angles = cells.values.narrow(1, 0, 1) * frequencies_.unsqueeze(0) * (2.0 * kPi);  // [B, k]
      features.push_back(torch::sin(angles));
      features.push_back(torch::cos(angles));
    }
    if (n_bins_ > 0)  // bin t of n: 0 below it, 1 above it, linear within
      features.push_back((cells.values.narrow(1, 1, 1) * static_cast<double>(n_bins_) - bin_starts_).clamp(0, 1));
    // Clamped: a value far outside training would otherwise dominate the token.
    if (linear_term_) features.push_back(cells.values.narrow(1, 0, 1).clamp(-kLinearTermBound, kLinearTermBound));
    return torch::relu(projection_(features.size() == 1 ? features[0] : torch::cat(features, 1)));
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
  bool periodic_, linear_term_;
  int64_t n_bins_;
  torch::Tensor frequencies_, bin_starts_;
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
      {{"loss", "mse"}, {"embedding", "piecewise"}, {"n_bins", 16}, {"linear_term", true}, {"n_frequencies", 16}, {"frequency_scale", 1.0},
       {"transform", "none"}},
      [](const FieldSpec& spec) {
        options::one_of(spec, "loss", {"mse", "mae", "huber"});
        options::one_of(spec, "transform", {"none", "log"});
        options::one_of(spec, "embedding", {"periodic", "piecewise", "both"});
        options::integer_in(spec, "n_bins", 2, 256);
        options::boolean(spec, "linear_term");
        options::integer_in(spec, "n_frequencies", 1, 512);
        const auto& scale = spec.options.at("frequency_scale");
        if (!scale.is_number() || !(scale.get<double>() > 0)) options::fail(spec, "frequency_scale", "must be a positive number");
      },
      {{"embedding", "periodic"}, {"n_bins", 16}, {"linear_term", false}});
}

}  // namespace j2v
