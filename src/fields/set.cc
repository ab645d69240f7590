// Set: any number of labels from a vocabulary learned in training (tags of an item). A list
// of labels, or a lone label as a one-element set; an empty list is an empty set (valued),
// null elements are skipped, repeated labels count once, and past `max_size` distinct
// labels the rest are dropped (stated rule). Embedded as the mean of the labels'
// embeddings, decoded with one logit per label (binary cross-entropy); the payload gives
// the labels whose probability reaches `threshold` and the `topk` most probable.
#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "fields/field_module.h"
#include "fields/label_counts.h"
#include "fields/label_index.h"
#include "fields/label_text.h"
#include "fields/option_checks.h"
#include "fields/registry.h"

namespace j2v {
namespace {

// Calls fn(label) for the set's elements, in order, skipping nulls.
template <typename Fn>
void for_each_label(const Scalar& value, Fn fn) {
  if (value.kind != Scalar::Kind::kArray) {
    fn(label_text(value, "a set"));
    return;
  }
  for (uint32_t i = 0; i < value.size; ++i) {
    const Scalar& e = value.elements[i];
    if (e.kind == Scalar::Kind::kNull) continue;
    if (e.kind == Scalar::Kind::kObject || e.kind == Scalar::Kind::kArray)
      throw EncodeError(fmt::format("element {} is {}, but a set holds labels (strings, numbers, booleans)", i + 1,
                                    e.kind_name()));
    fn(label_text(e, "a set"));
  }
}

class SetStats : public FieldStats {
 public:
  void observe(const Scalar& value) override {
    if (value.kind == Scalar::Kind::kMissing || value.kind == Scalar::Kind::kNull) return;
    if (value.kind == Scalar::Kind::kString && value.text == kMaskLiteral) return;
    for_each_label(value, [&](std::string_view label) { counts.add(label); });
  }
  void merge(const FieldStats& other) override { counts.merge(static_cast<const SetStats&>(other).counts); }
  LabelCounts counts;
};

// Index layout of a cell's `max_size` indices: 0 = no label in this position,
// 1 = a label outside the vocabulary, 2 + i = vocabulary label i.
class SetField : public Field {
 public:
  using Field::Field;
  bool uses_values() const override { return false; }
  bool uses_indices() const override { return true; }
  int64_t width() const override { return spec_.options.at("max_size").get<int64_t>(); }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<SetStats>(); }

  void fit(const FieldStats& base) override {
    const auto& stats = static_cast<const SetStats&>(base);
    std::vector<std::string> vocab;
    auto limit = static_cast<size_t>(spec_.options.at("max_vocab_size").get<int64_t>());
    for (auto& [label, count] : stats.counts.most_frequent(limit)) vocab.push_back(std::move(label));
    set_vocabulary(vocab);
  }
  nlohmann::json state_json() const override { return {{"vocabulary", vocabulary_.labels()}}; }
  void load_state_json(const nlohmann::json& s) override {
    set_vocabulary(s.at("vocabulary").get<std::vector<std::string>>());
  }
  // Outputs: the unavailable bucket, then one per vocabulary label.
  int64_t num_outputs() const { return static_cast<int64_t>(vocabulary_.size()) + 1; }
  const std::vector<std::string>& labels() const { return vocabulary_.labels(); }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    int64_t w = width();
    int64_t* out = column.indices.data() + row * w;
    std::fill(out, out + w, 0);
    int64_t n = 0;
    for_each_label(value, [&](std::string_view label) {
      int64_t index = vocabulary_.find(label) + 2;  // kNotFound (-1) -> 1, the unavailable bucket
      if (n >= w || std::find(out, out + n, index) != out + n) return;
      out[n++] = index;
    });
    column.state[row] = static_cast<uint8_t>(CellState::kValued);
  }

 private:
  void set_vocabulary(const std::vector<std::string>& vocab) {
    vocabulary_ = LabelIndex();
    for (const auto& label : vocab) vocabulary_.insert(label);
    mark_fitted();
  }
  LabelIndex vocabulary_;
};

// [N, width] indices -> [N, outputs] multi-hot over (unavailable, labels...).
torch::Tensor multi_hot(const torch::Tensor& indices, int64_t outputs) {
  auto hot = torch::zeros({indices.size(0), outputs + 1}, torch::kFloat);
  hot.scatter_(1, indices, 1.0f);  // position 0 collects the empty positions
  return hot.narrow(1, 1, outputs);
}

class SetMetrics : public FieldMetrics {
 public:
  SetMetrics(int64_t outputs, double threshold) : outputs_(outputs), threshold_(threshold) {}
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = multi_hot(truth.indices.index_select(0, rows), outputs_) > 0.5;
    auto predicted = torch::sigmoid(content) >= threshold_;
    auto both = predicted.logical_and(target).sum(1).to(torch::kDouble);
    auto either = predicted.logical_or(target).sum(1).to(torch::kDouble);
    true_pos_ += both.sum().item<double>();
    predicted_ += predicted.sum().item<double>();
    actual_ += target.sum().item<double>();
    exact_ += (predicted == target).all(1).sum().item<double>();
    // An empty set predicted as empty is a perfect match.
    jaccard_ += torch::where(either > 0, both / either.clamp_min(1), torch::ones_like(both)).sum().item<double>();
    n_ += static_cast<double>(rows.size(0));
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    double precision = predicted_ > 0 ? true_pos_ / predicted_ : 0, recall = actual_ > 0 ? true_pos_ / actual_ : 0;
    double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
    return {{"f1", f1}, {"precision", precision}, {"recall", recall}, {"exact_match", exact_ / n_},
            {"jaccard", jaccard_ / n_}};
  }

 private:
  int64_t outputs_;
  double threshold_, true_pos_ = 0, predicted_ = 0, actual_ = 0, exact_ = 0, jaccard_ = 0, n_ = 0;
};

class SetModuleImpl : public FieldModuleImpl {
 public:
  SetModuleImpl(const SetField& field, const FieldModuleOptions& options) : FieldModuleImpl(field, options), set_(field) {
    threshold_ = field.spec().options.at("threshold").get<double>();
    topk_ = field.spec().options.at("topk").get<int64_t>();
    embedding_ = register_module(
        "embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(field.num_outputs() + 1, options.d_model).padding_idx(0)));
    empty_ = register_parameter("empty", torch::randn({options.d_model}) * 0.02);
    build_head(options.d_model);
  }
  int64_t content_width() const override { return set_.num_outputs(); }

  torch::Tensor embed(const FieldTensors& cells) override {
    auto count = (cells.indices > 0).sum(1, /*keepdim=*/true).to(torch::kFloat);  // [B, 1]
    auto mean = embedding_(cells.indices).sum(1) / count.clamp_min(1.0f);
    return mean + (count == 0).to(torch::kFloat) * empty_.unsqueeze(0);
  }
  // Summed over labels (not averaged): with hundreds of labels and a handful per cell an
  // average would starve the few positives.
  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = multi_hot(truth.indices.index_select(0, rows), set_.num_outputs());
    return torch::nn::functional::binary_cross_entropy_with_logits(
               content, target, torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
        .sum(1);
  }
  std::unique_ptr<FieldMetrics> new_metrics() const override {
    return std::make_unique<SetMetrics>(set_.num_outputs(), threshold_);
  }
  ValueType content_type() const override {
    auto ranked = ValueType::structure({{"label", ValueType::string()}, {"probability", ValueType::float64()}});
    return ValueType::structure({{"labels", ValueType::list(ValueType::string())}, {"topk", ValueType::list(ranked)}});
  }
  nlohmann::json content_payload(const float* logits) const override {
    int64_t n = set_.num_outputs();
    std::vector<double> p(n);
    for (int64_t i = 0; i < n; ++i) p[i] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i])));
    auto label = [&](int64_t i) -> nlohmann::json {
      return i == 0 ? nlohmann::json(nullptr) : nlohmann::json(set_.labels()[i - 1]);
    };
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    nlohmann::json labels = nlohmann::json::array(), topk = nlohmann::json::array();
    for (int64_t i : order) {
      if (p[i] < threshold_) break;
      if (i > 0) labels.push_back(set_.labels()[i - 1]);
    }
    for (int64_t k = 0; k < std::min<int64_t>(topk_, n); ++k)
      topk.push_back({{"label", label(order[k])}, {"probability", p[order[k]]}});
    return {{"labels", labels}, {"topk", topk}};
  }

 private:
  const SetField& set_;
  double threshold_ = 0.5;
  int64_t topk_ = 5;
  torch::nn::Embedding embedding_{nullptr};
  torch::Tensor empty_;
};

std::shared_ptr<FieldModuleImpl> SetField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<SetModuleImpl>(*this, options);
}

}  // namespace

Datatype set_datatype() {
  return datatype_of<SetField>(
      "set",
      "any number of labels (a list; a lone label is a one-element set), vocabulary learned in training",
      {{"max_vocab_size", 256}, {"max_size", 16}, {"threshold", 0.5}, {"topk", 5}},
      [](const FieldSpec& spec) {
        options::integer_in(spec, "max_vocab_size", 1, 1 << 20);
        options::integer_in(spec, "max_size", 1, 4096);
        options::number_in(spec, "threshold", 0.0, 1.0);
        options::integer_in(spec, "topk", 1, 1 << 20);
      });
}

}  // namespace j2v
