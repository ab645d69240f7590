// Category: one label out of a vocabulary learned from training data (the most frequent
// max_vocab_size labels); index 0 is the "unavailable" bucket for unseen and overflow
// labels. Embedded by a lookup table, decoded with cross-entropy; the payload gives the
// label, its probability and the top-k.
#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "base/json_read.h"
#include "nn/random.h"
#include "fields/field_module.h"
#include "fields/label_counts.h"
#include "fields/label_index.h"
#include "fields/label_text.h"
#include "fields/roc_auc.h"
#include "fields/option_checks.h"
#include "fields/registry.h"

namespace j2v {
namespace {

std::string_view label_text(const Scalar& v) { return j2v::label_text(v, "a category"); }

class CategoryStats : public FieldStats {
 public:
  void observe(const Scalar& value) override {
    if (value.kind == Scalar::Kind::kMissing || value.kind == Scalar::Kind::kNull) return;
    if (value.kind == Scalar::Kind::kString && value.text == kMaskLiteral) return;
    counts.add(label_text(value));
  }
  void merge(const FieldStats& other) override { counts.merge(static_cast<const CategoryStats&>(other).counts); }
  LabelCounts counts;
};

class CategoryField : public Field {
 public:
  using Field::Field;
  bool uses_values() const override { return false; }
  bool uses_indices() const override { return true; }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<CategoryStats>(); }

  void fit(const FieldStats& base) override {
    const auto& stats = static_cast<const CategoryStats&>(base);
    std::vector<std::string> vocab;
    std::vector<int64_t> counts;
    for (auto& [label, count] : stats.counts.most_frequent(static_cast<size_t>(max_vocab_size()))) {
      vocab.push_back(std::move(label));
      counts.push_back(count);
    }
    set_vocabulary(vocab, counts);
  }

  nlohmann::json state_json() const override {
    return {{"vocabulary", vocabulary_.labels()}, {"counts", counts_}};
  }
  void load_state_json(const nlohmann::json& s) override {
    set_vocabulary(s.at("vocabulary").get<std::vector<std::string>>(),
                   read_integers(s, "counts"));
  }

  int64_t max_vocab_size() const { return spec_.options.at("max_vocab_size").get<int64_t>(); }
  // Index 0 is "unavailable"; label i of the vocabulary has index i + 1.
  int64_t num_classes() const { return static_cast<int64_t>(vocabulary_.size()) + 1; }
  const std::vector<std::string>& labels() const { return vocabulary_.labels(); }

  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    int64_t id = vocabulary_.find(label_text(value));
    column.state[row] = static_cast<uint8_t>(CellState::kValued);
    column.indices[row] = id + 1;  // kNotFound (-1) lands in the unavailable bucket 0
  }

 private:
  void set_vocabulary(const std::vector<std::string>& vocab, std::vector<int64_t> counts) {
    vocabulary_ = LabelIndex();
    for (const auto& label : vocab) vocabulary_.insert(label);
    counts_ = std::move(counts);
    mark_fitted();
  }
  LabelIndex vocabulary_;
  std::vector<int64_t> counts_;
};

// Exact accuracy and cross-entropy; ROC AUC when the vocabulary has exactly two labels
// (the score is the probability of the second label).
class CategoryMetrics : public FieldMetrics {
 public:
  explicit CategoryMetrics(int64_t classes) : classes_(classes) {}
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = truth.indices.index_select(0, rows).select(1, 0);
    auto logp = torch::log_softmax(content, 1);
    correct_ += (content.argmax(1) == target).sum().item<double>();
    nll_ += -logp.gather(1, target.unsqueeze(1)).sum().item<double>();
    n_ += static_cast<double>(target.size(0));
    if (classes_ == 3) {
      auto p = logp.exp();
      auto score = (p.select(1, 2) / (p.select(1, 1) + p.select(1, 2) + 1e-12)).contiguous();
      auto t = target.contiguous();
      const float* s = score.data_ptr<float>();
      const int64_t* y = t.data_ptr<int64_t>();
      for (int64_t i = 0; i < t.size(0); ++i)
        if (y[i] > 0) scored_.emplace_back(s[i], y[i] == 2);
    }
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    std::map<std::string, double> out{{"accuracy", correct_ / n_}, {"cross_entropy", nll_ / n_}};
    if (classes_ == 3) {
      double auc = roc_auc(scored_);
      if (auc >= 0) out["auc"] = auc;
    }
    return out;
  }

 private:
  int64_t classes_;
  double correct_ = 0, nll_ = 0, n_ = 0;
  std::vector<std::pair<float, bool>> scored_;
};

class CategoryModuleImpl : public FieldModuleImpl {
 public:
  CategoryModuleImpl(const CategoryField& field, const FieldModuleOptions& options)
      : FieldModuleImpl(field, options), category_(field) {
    p_unavailable_ = field.spec().options.at("p_unavailable").get<double>();
    topk_ = field.spec().options.at("topk").get<int64_t>();
    embedding_ = register_module("embedding", torch::nn::Embedding(field.num_classes(), options.d_model));
    build_head(options.d_model);
  }
  int64_t content_width() const override { return category_.num_classes(); }

  torch::Tensor embed(const FieldTensors& cells) override { return embedding_(cells.indices.select(1, 0)); }

  void augment_for_training(FieldTensors& cells) override {
    if (p_unavailable_ <= 0) return;
    auto drop = torch::rand(cells.indices.sizes(), nn::thread_generator()) < p_unavailable_;
    cells.indices = cells.indices.masked_fill(drop, 0);
  }

  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth,
                             const torch::Tensor& rows) override {
    auto target = truth.indices.index_select(0, rows).select(1, 0);
    return torch::nn::functional::cross_entropy(
        content, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  }

  std::unique_ptr<FieldMetrics> new_metrics() const override {
    return std::make_unique<CategoryMetrics>(category_.num_classes());
  }

  ValueType content_type() const override {
    auto ranked = ValueType::structure({{"label", ValueType::string()}, {"probability", ValueType::float64()}});
    return ValueType::structure(
        {{"value", ValueType::string()}, {"probability", ValueType::float64()}, {"topk", ValueType::list(ranked)}});
  }

  nlohmann::json content_payload(const float* logits) const override {
    int64_t n = category_.num_classes();
    float max_logit = *std::max_element(logits, logits + n);
    std::vector<double> p(n);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += (p[i] = std::exp(logits[i] - max_logit));
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    int64_t k = std::min<int64_t>(std::max<int64_t>(topk_, 1), n);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    auto label = [&](int64_t i) -> nlohmann::json {
      return i == 0 ? nlohmann::json(nullptr) : nlohmann::json(category_.labels()[i - 1]);
    };
    nlohmann::json topk = nlohmann::json::array();
    for (int64_t i = 0; i < k; ++i)
      topk.push_back({{"label", label(order[i])}, {"probability", p[order[i]] / total}});
    return {{"value", label(order[0])}, {"probability", p[order[0]] / total}, {"topk", topk}};
  }

 private:
  const CategoryField& category_;
  double p_unavailable_ = 0;
  int64_t topk_ = 3;
  torch::nn::Embedding embedding_{nullptr};
};

std::shared_ptr<FieldModuleImpl> CategoryField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<CategoryModuleImpl>(*this, options);
}

}  // namespace

Datatype category_datatype() {
  return datatype_of<CategoryField>(
      "category",
      "one label from a vocabulary learned in training; unseen labels go to an 'unavailable' bucket",
      {{"max_vocab_size", 256}, {"topk", 3}, {"p_unavailable", 0.0}},
      [](const FieldSpec& spec) {
        options::integer_in(spec, "max_vocab_size", 1, 1 << 20);
        options::integer_in(spec, "topk", 1, 1 << 20);
        options::number_in(spec, "p_unavailable", 0.0, 1.0);
      });
}

}  // namespace j2v
