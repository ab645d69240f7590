#pragma once
// A pre-LayerNorm transformer block: x + attn(LN(x)), then x + FFN(LN(x)) with a 4x GELU
// feed-forward. Pre-norm trains stably without warmup tricks at small depth.
#include <torch/torch.h>

#include "nn/attention.h"

namespace j2v::nn {

class TransformerBlockImpl : public torch::nn::Module {
 public:
  // n_kv_heads: as SelfAttention; with_attention false: the feed-forward half only (a
  // branch with `attention: none` mixes nothing between its tokens).
  TransformerBlockImpl(int64_t d_model, int64_t n_heads, double dropout, int64_t n_kv_heads = 0,
                       bool with_attention = true);
  // positions: rotary positions [T] of the tokens, or undefined.
  // rows: the indices of the flattened [B x T] tokens that exist (padding required), or
  // undefined for all. Given, only those tokens are normalised, projected and fed forward;
  // the others leave the block as they came, keys and values of zero inside it (masked).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& padding, const torch::Tensor& positions = {},
                        const torch::Tensor& rows = {});

 private:
  double dropout_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  SelfAttention attention_{nullptr};
  torch::nn::Linear ff_in_{nullptr}, ff_out_{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace j2v::nn
