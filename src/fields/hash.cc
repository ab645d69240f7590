// Hash: an identifier from an unbounded set (an account, a device, a card), where the same
// value in two records must mean the same thing but no vocabulary could hold every value.
// The value's text is hashed by `num_hashes` independent hash functions into `buckets`
// rows of one embedding table, and the rows are summed (hash embeddings, Svenstrup et al.
// 2017; the Bloom-filter trick): two values collide in every function only with probability
// about (1/buckets)^num_hashes, so a value keeps an embedding of its own in effect, learned
// from every record that carries it. Nothing is fitted; an unseen value still gets a stable
// embedding (untrained rows). An input only: its content is not decoded.
#include <fmt/format.h>

#include "fields/field_module.h"
#include "fields/hashed_input.h"
#include "fields/option_checks.h"
#include "fields/registry.h"

namespace j2v {
namespace {

uint64_t hash_text(std::string_view text, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9e3779b97f4a7c15ull);
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;  // FNV-1a
  h ^= h >> 33;  // final mix (murmur3's), so nearby values spread over the buckets
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

class HashField : public HashedInputField {
 public:
  using HashedInputField::HashedInputField;
  int64_t width() const override { return spec_.options.at("num_hashes").get<int64_t>(); }
  int64_t buckets() const { return spec_.options.at("buckets").get<int64_t>(); }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  // Strings as written; numbers by their text (account 1234 and "1234" are the same account).
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    std::string_view text = hashed_text(value, "a hash (an identifier)");
    int64_t k = width(), n = buckets();
    int64_t* out = column.indices.data() + row * k;
    for (int64_t i = 0; i < k; ++i) out[i] = static_cast<int64_t>(hash_text(text, static_cast<uint64_t>(i)) % static_cast<uint64_t>(n));
    column.state[row] = static_cast<uint8_t>(CellState::kValued);
  }
};

class HashModuleImpl : public HashedInputModuleImpl {
 public:
  HashModuleImpl(const HashField& field, const FieldModuleOptions& options) : HashedInputModuleImpl(field, options) {
    embedding_ = register_module("embedding", torch::nn::Embedding(field.buckets(), options.d_model));
    build_head(options.d_model);
  }
  // The sum over the hash functions' rows; [cells, k] -> [cells, d].
  torch::Tensor embed(const FieldTensors& cells) override { return embedding_(cells.indices).sum(1); }

 private:
  torch::nn::Embedding embedding_{nullptr};
};

std::shared_ptr<FieldModuleImpl> HashField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<HashModuleImpl>(*this, options);
}

}  // namespace

Datatype hash_datatype() {
  return datatype_of<HashField>(
      "hash",
      "an identifier from an unbounded set (account, device): hashed by several functions into shared "
      "embedding rows, no vocabulary; an input only",
      {{"buckets", 16384}, {"num_hashes", 2}},
      [](const FieldSpec& spec) {
        if (spec.target)
          throw SchemaError("field '" + spec.name + "': a hash field cannot be a target (it has no vocabulary to "
                            "predict from); use category for a label with a bounded set of values");
        options::integer_in(spec, "buckets", 16, 1 << 24);
        options::integer_in(spec, "num_hashes", 1, 8);
      });
}

}  // namespace j2v
