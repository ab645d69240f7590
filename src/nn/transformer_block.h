#pragma once
// A pre-LayerNorm transformer block: x + attn(LN(x)), then x + FFN(LN(x)) with a 4x GELU
// feed-forward. Pre-norm trains stably without warmup tricks at small depth.
#include <torch/torch.h>

#include "nn/attention.h"

namespace j2v::nn {

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t d_model, int64_t n_heads, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& padding);

 private:
  double dropout_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  SelfAttention attention_{nullptr};
  torch::nn::Linear ff_in_{nullptr}, ff_out_{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace j2v::nn
