// Vector: a fixed number (`n_dim`) of reals, e.g. an embedding computed elsewhere. Each
// dimension is standardised by its training mean/std (`normalize`), embedded by Linear +
// GELU, decoded with an l2 | l1 loss. Stated rules: a list of exactly n_dim numbers
// (a lone number when n_dim is 1); a non-finite element makes the cell "other"; a list of
// another length, or a non-number element, is an error naming the element.
#include <fmt/format.h>

#include <cmath>

#include "fields/field_module.h"
#include "fields/option_checks.h"
#include "fields/registry.h"
#include "nn/gelu.h"

namespace j2v {
namespace {

constexpr float kClip = 50.0f;

// Calls fn(i, x) per element; returns false when an element is not finite.
template <typename Fn>
bool for_each_element(const Scalar& v, int64_t n_dim, Fn fn) {
  if (v.kind == Scalar::Kind::kNumber && n_dim == 1) {
    if (!std::isfinite(v.number)) return false;
    fn(0, v.number);
    return true;
  }
  if (v.kind != Scalar::Kind::kArray)
    throw EncodeError(fmt::format("is {}, but the field is a vector of {} numbers", v.kind_name(), n_dim));
  if (static_cast<int64_t>(v.size) != n_dim)
    throw EncodeError(fmt::format("has {} elements, but the field is a vector of n_dim {} numbers", v.size, n_dim));
  bool finite = true;
  for (uint32_t i = 0; i < v.size; ++i) {
    const Scalar& e = v.elements[i];
    if (e.kind != Scalar::Kind::kNumber)
      throw EncodeError(fmt::format("element {} is {}, but a vector holds numbers", i + 1, e.kind_name()));
    finite = finite && std::isfinite(e.number);
  }
  if (!finite) return false;
  for (uint32_t i = 0; i < v.size; ++i) fn(i, v.elements[i].number);
  return true;
}

class VectorStats : public FieldStats {
 public:
  explicit VectorStats(int64_t n_dim) : mean(n_dim, 0.0), m2(n_dim, 0.0) {}
  void observe(const Scalar& value) override {
    if (value.kind == Scalar::Kind::kMissing || value.kind == Scalar::Kind::kNull) return;
    if (value.kind == Scalar::Kind::kString && value.text == kMaskLiteral) return;
    if (value.kind == Scalar::Kind::kString) return;  // encoded as "other"
    std::vector<double>& x = scratch;
    x.resize(mean.size());
    if (!for_each_element(value, static_cast<int64_t>(mean.size()), [&](int64_t i, double v) { x[i] = v; })) return;
    ++count;
    for (size_t i = 0; i < mean.size(); ++i) {
      double delta = x[i] - mean[i];
      mean[i] += delta / count;
      m2[i] += delta * (x[i] - mean[i]);
    }
  }
  void merge(const FieldStats& other_base) override {
    const auto& other = static_cast<const VectorStats&>(other_base);
    if (other.count == 0) return;
    double n = count + other.count;
    for (size_t i = 0; i < mean.size(); ++i) {
      double delta = other.mean[i] - mean[i];
      m2[i] += other.m2[i] + delta * delta * count * other.count / n;
      mean[i] += delta * other.count / n;
    }
    count = n;
  }
  double count = 0;
  std::vector<double> mean, m2, scratch;
};

class VectorField : public Field {
 public:
  using Field::Field;
  bool uses_values() const override { return true; }
  bool uses_indices() const override { return false; }
  int64_t width() const override { return n_dim(); }
  int64_t n_dim() const { return spec_.options.at("n_dim").get<int64_t>(); }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<VectorStats>(n_dim()); }

  void fit(const FieldStats& base) override {
    const auto& stats = static_cast<const VectorStats&>(base);
    bool normalize = spec_.options.at("normalize").get<bool>();
    mean_.assign(n_dim(), 0.0);
    std_.assign(n_dim(), 1.0);
    if (normalize && stats.count > 1)
      for (int64_t i = 0; i < n_dim(); ++i) {
        mean_[i] = stats.mean[i];
        double var = stats.m2[i] / (stats.count - 1);
        if (!std::isfinite(mean_[i]) || !std::isfinite(var)) mean_[i] = 0.0, var = 1.0;  // see number.cc
        std_[i] = var > 1e-24 ? std::sqrt(var) : 1.0;
      }
    mark_fitted();
  }
  nlohmann::json state_json() const override { return {{"mean", mean_}, {"std", std_}}; }
  void load_state_json(const nlohmann::json& s) override {
    mean_ = s.at("mean").get<std::vector<double>>();
    std_ = s.at("std").get<std::vector<double>>();
    if (static_cast<int64_t>(mean_.size()) != n_dim() || static_cast<int64_t>(std_.size()) != n_dim())
      throw std::invalid_argument("field '" + address_.str() + "': saved state has the wrong n_dim");
    mark_fitted();
  }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& std() const { return std_; }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    if (value.kind == Scalar::Kind::kString) {  // not a vector, but not a broken record either
      column.state[row] = static_cast<uint8_t>(CellState::kOther);
      return;
    }
    float* out = column.values.data() + row * n_dim();
    bool finite = for_each_element(value, n_dim(), [&](int64_t i, double x) {
      out[i] = std::max(-kClip, std::min(kClip, static_cast<float>((x - mean_[i]) / std_[i])));
    });
    column.state[row] = static_cast<uint8_t>(finite ? CellState::kValued : CellState::kOther);
  }

 private:
  std::vector<double> mean_, std_;
};

class VectorMetrics : public FieldMetrics {
 public:
  explicit VectorMetrics(torch::Tensor std) : std_(std::move(std)) {}
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = truth.values.index_select(0, rows);
    auto err = (content - target) * std_.unsqueeze(0);
    abs_sum_ += err.abs().sum().item<double>();
    sq_sum_ += err.square().sum().item<double>();
    elements_ += static_cast<double>(err.numel());
    cosine_ += torch::nn::functional::cosine_similarity(content, target).sum().item<double>();
    n_ += static_cast<double>(rows.size(0));
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    return {{"mae", abs_sum_ / elements_}, {"rmse", std::sqrt(sq_sum_ / elements_)}, {"cosine", cosine_ / n_}};
  }

 private:
  torch::Tensor std_;
  double abs_sum_ = 0, sq_sum_ = 0, elements_ = 0, cosine_ = 0, n_ = 0;
};

class VectorModuleImpl : public FieldModuleImpl {
 public:
  VectorModuleImpl(const VectorField& field, const FieldModuleOptions& options)
      : FieldModuleImpl(field, options), vector_(field) {
    loss_ = field.spec().options.at("loss").get<std::string>();
    projection_ = register_module("projection", torch::nn::Linear(field.n_dim(), options.d_model));
    build_head(options.d_model);
  }
  int64_t content_width() const override { return vector_.n_dim(); }
  torch::Tensor embed(const FieldTensors& cells) override { return nn::gelu(projection_(cells.values)); }
  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto diff = content - truth.values.index_select(0, rows);
    return loss_ == "l1" ? diff.abs().mean(1) : diff.square().mean(1);
  }
  std::unique_ptr<FieldMetrics> new_metrics() const override {
    return std::make_unique<VectorMetrics>(torch::tensor(vector_.std(), torch::kDouble).to(torch::kFloat));
  }
  ValueType content_type() const override {
    return ValueType::structure({{"value", ValueType::list(ValueType::float64())}});
  }
  nlohmann::json content_payload(const float* content) const override {
    std::vector<double> v(vector_.n_dim());
    for (int64_t i = 0; i < vector_.n_dim(); ++i) v[i] = content[i] * vector_.std()[i] + vector_.mean()[i];
    return {{"value", v}};
  }

 private:
  const VectorField& vector_;
  std::string loss_;
  torch::nn::Linear projection_{nullptr};
};

std::shared_ptr<FieldModuleImpl> VectorField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<VectorModuleImpl>(*this, options);
}

}  // namespace

Datatype vector_datatype() {
  return datatype_of<VectorField>(
      "vector",
      "a list of exactly n_dim numbers (n_dim is required)",
      {{"n_dim", nullptr}, {"loss", "l2"}, {"normalize", true}},
      [](const FieldSpec& spec) {
        if (spec.options.at("n_dim").is_null())
          throw SchemaError("field '" + spec.name + "': a vector needs option 'n_dim' (its number of elements)");
        options::integer_in(spec, "n_dim", 1, 65536);
        options::one_of(spec, "loss", {"l2", "l1"});
        options::boolean(spec, "normalize");
      });
}

}  // namespace j2v
