#include "nn/learned_query_pooling.h"

#include "nn/attention.h"
#include "nn/short_attention.h"

namespace j2v::nn {

LearnedQueryPoolingImpl::LearnedQueryPoolingImpl(int64_t d_model, int64_t n_heads, int64_t n_queries, double dropout)
    : n_heads_(n_heads), dropout_(dropout) {
  queries_ = register_parameter("queries", torch::randn({n_queries, d_model}) * 0.02);
  q_ = register_module("q", torch::nn::Linear(d_model, d_model));
  kv_ = register_module("kv", torch::nn::Linear(d_model, 2 * d_model));
  out_ = register_module("out", torch::nn::Linear(d_model, d_model));
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
}

torch::Tensor LearnedQueryPoolingImpl::forward(const torch::Tensor& x, const torch::Tensor& padding,
                                               const torch::Tensor& which) {
  auto queries = which.defined() ? queries_.index_select(0, which) : queries_;
  int64_t B = x.size(0), T = x.size(1), d = x.size(2), Q = queries.size(0), dh = d / n_heads_;
  auto q = q_(queries).view({1, Q, n_heads_, dh}).permute({0, 2, 1, 3}).expand({B, n_heads_, Q, dh});
  auto kv = kv_(x).view({B, T, 2, n_heads_, dh});
  auto keys = kv.select(2, 0).transpose(1, 2);  // [B, h, T, dh]
  auto y = short_attention_applies(q, keys)
               ? short_cross_attention(q, kv, padding, dropout_, is_training())
               : attend(q, keys, kv.select(2, 1).transpose(1, 2), padding, dropout_, is_training());
  return norm_(out_(y.transpose(1, 2).reshape({B, Q, d})) + queries.unsqueeze(0));
}

}  // namespace j2v::nn
