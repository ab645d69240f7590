#pragma once
// Multi-head self-attention over [B, T, d] with a key padding mask. Written here because
// LibTorch 1.13's MultiheadAttention has no batch_first.
#include <torch/torch.h>

namespace j2v::nn {

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t d_model, int64_t n_heads, double dropout);
  // padding: [B, T] bool, true where a token is absent (it is never attended to).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& padding);

 private:
  int64_t n_heads_;
  double dropout_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
};
TORCH_MODULE(SelfAttention);

// Scaled dot-product attention of q [B,h,Q,dh] over k, v [B,h,T,dh]; padding [B,T] or undefined.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, double dropout, bool training);

}  // namespace j2v::nn
