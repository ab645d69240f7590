// Text: free text, learned from scratch (no model hub can be reached from here). The text
// is lower-cased and split into words; each word gives one hashed feature for itself and
// one per character trigram of "<word>" (fastText's subwords, so "refunded" and "refund"
// share most features and a typo still lands near its word). Up to `max_features`
// features per cell (words first), hashed into `buckets` embeddings, pooled by a learned
// query. Text is an input: it has no content decoder (json2vec does not generate text), so
// it cannot be a target, and a masked text cell is decoded to its state only.
#include <fmt/format.h>

#include "fields/field_module.h"
#include "fields/hashed_input.h"
#include "fields/option_checks.h"
#include "fields/registry.h"
#include "nn/learned_query_pooling.h"

namespace j2v {
namespace {

uint64_t mix(uint64_t h, unsigned char c) { return (h ^ c) * 1099511628211ull; }  // FNV-1a step

// Writes up to `width` features (1..buckets; 0 = none) of `text` to out.
void text_features(std::string_view text, int64_t buckets, int64_t width, int64_t* out) {
  std::fill(out, out + width, 0);
  auto is_word = [](unsigned char c) { return std::isalnum(c) || c >= 0x80; };  // UTF-8 bytes stay in words
  auto lower = [](unsigned char c) { return static_cast<unsigned char>(std::tolower(c)); };
  auto bucket = [&](uint64_t h) { return static_cast<int64_t>((h ^ (h >> 31)) % static_cast<uint64_t>(buckets)) + 1; };
  int64_t n = 0;
  // Pass 1: whole words; pass 2: their trigrams, while room is left.
  for (int pass = 0; pass < 2 && n < width; ++pass) {
    size_t i = 0;
    while (i < text.size() && n < width) {
      while (i < text.size() && !is_word(text[i])) ++i;
      size_t begin = i;
      while (i < text.size() && is_word(text[i])) ++i;
      if (i == begin) break;
      std::string_view word = text.substr(begin, i - begin);
      if (pass == 0) {
        uint64_t h = 1469598103934665603ull;
        for (unsigned char c : word) h = mix(h, lower(c));
        out[n++] = bucket(h);
        continue;
      }
      // Trigrams of "<word>": positions -1 .. size, '<' and '>' mark the ends.
      auto at = [&](int64_t k) -> unsigned char {
        return k < 0 ? '<' : k >= static_cast<int64_t>(word.size()) ? '>' : lower(word[k]);
      };
      for (int64_t k = -1; k + 2 <= static_cast<int64_t>(word.size()) && n < width; ++k) {
        uint64_t h = 0x9e3779b97f4a7c15ull;  // another seed: a trigram never collides with its word by design
        h = mix(mix(mix(h, at(k)), at(k + 1)), at(k + 2));
        out[n++] = bucket(h);
      }
    }
  }
}

class TextField : public HashedInputField {
 public:
  using HashedInputField::HashedInputField;
  int64_t width() const override { return spec_.options.at("max_features").get<int64_t>(); }
  int64_t buckets() const { return spec_.options.at("buckets").get<int64_t>(); }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  // Strings are text; numbers read as written and booleans as true/false; objects and
  // lists are errors.
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    std::string_view text = hashed_text(value, "text");
    text_features(text, buckets(), width(), column.indices.data() + row * width());
    column.state[row] = static_cast<uint8_t>(CellState::kValued);
  }
};

class TextModuleImpl : public HashedInputModuleImpl {
 public:
  TextModuleImpl(const TextField& field, const FieldModuleOptions& options) : HashedInputModuleImpl(field, options) {
    embedding_ = register_module(
        "embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(field.buckets() + 1, options.d_model).padding_idx(0)));
    int64_t heads = options.d_model % 4 == 0 ? 4 : 1;
    pool_ = register_module("pool", nn::LearnedQueryPooling(options.d_model, heads, 1, options.dropout));
    build_head(options.d_model);
  }
  torch::Tensor embed(const FieldTensors& cells) override {
    auto padding = cells.indices == 0;
    // An empty text attends to its (zero) first position rather than to nothing.
    padding.select(1, 0).fill_(false);
    return pool_->forward(embedding_(cells.indices), padding).select(1, 0);
  }

 private:
  torch::nn::Embedding embedding_{nullptr};
  nn::LearnedQueryPooling pool_{nullptr};
};

std::shared_ptr<FieldModuleImpl> TextField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<TextModuleImpl>(*this, options);
}

}  // namespace

Datatype text_datatype() {
  return datatype_of<TextField>(
      "text",
      "free text: hashed words and character trigrams, learned from scratch; an input only",
      {{"max_features", 64}, {"buckets", 16384}},
      [](const FieldSpec& spec) {
        if (spec.target)
          throw SchemaError("field '" + spec.name + "': a text field cannot be a target (json2vec does not generate "
                            "text); use it as an input, or a category/set for labels");
        options::integer_in(spec, "max_features", 1, 4096);
        options::integer_in(spec, "buckets", 16, 1 << 24);
      });
}

}  // namespace j2v
