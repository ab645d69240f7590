#include "nn/transformer_block.h"

#include "nn/feed_forward.h"
#include "nn/residual_dropout.h"

namespace j2v::nn {

TransformerBlockImpl::TransformerBlockImpl(int64_t d_model, int64_t n_heads, double dropout, int64_t n_kv_heads,
                                           bool with_attention)
    : dropout_(dropout) {
  if (with_attention) {
    norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
    // Dropout on the residual branches only: attention-weight and hidden-layer dropout cost
    // most of a step's random numbers for no measurable gain at this size.
    attention_ = register_module("attention", SelfAttention(d_model, n_heads, 0.0, n_kv_heads));
  }
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  ff_in_ = register_module("ff_in", torch::nn::Linear(d_model, 4 * d_model));
  ff_out_ = register_module("ff_out", torch::nn::Linear(4 * d_model, d_model));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& padding,
                                           const torch::Tensor& positions, const torch::Tensor& rows) {
  bool packed = rows.defined();
  if (packed && rows.numel() == 0) return x;
  int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  auto h = packed ? x.reshape({B * T, d}).index_select(0, rows) : x;
  if (attention_)
    h = residual_dropout(h, attention_->forward(norm1_(h), padding, positions, rows), dropout_, is_training());
  h = residual_dropout(h, feed_forward(norm2_(h), ff_in_->weight, ff_in_->bias, ff_out_->weight, ff_out_->bias),
                       dropout_, is_training());
  return packed ? x.reshape({B * T, d}).index_copy(0, rows, h).view({B, T, d}) : h;
}

}  // namespace j2v::nn
