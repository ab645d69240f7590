#pragma once
// Multi-head self-attention over [B, T, d] with a key padding mask, optional grouped
// key/value heads (gqa: n_kv_heads < n_heads; mqa: one) and rotary position embeddings.
// Written here because LibTorch 1.13's MultiheadAttention has no batch_first.
#include <torch/torch.h>

namespace j2v::nn {

class SelfAttentionImpl : public torch::nn::Module {
 public:
  // n_kv_heads 0 = n_heads (plain multi-head attention); it must divide n_heads.
  SelfAttentionImpl(int64_t d_model, int64_t n_heads, double dropout, int64_t n_kv_heads = 0);
  // padding: [B, T] bool, true where a token is absent (it is never attended to).
  // positions: [T] int64 rotary positions of the tokens, or undefined for none.
  // rows: packed input, or undefined. Given, x is [P, d], the tokens at these P indices of
  // the flattened [B x T] grid (padding, then required, gives B and T); only they are
  // projected, the rest of the grid holds zero keys and values (padding masks them), and
  // the output is theirs, [P, d].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& padding, const torch::Tensor& positions = {},
                        const torch::Tensor& rows = {});

 private:
  int64_t n_heads_, n_kv_heads_;
  double dropout_;
  torch::nn::Linear qkv_{nullptr}, q_{nullptr}, kv_{nullptr}, out_{nullptr};
};
TORCH_MODULE(SelfAttention);

// Scaled dot-product attention of q [B,h,Q,dh] over k, v [B,h,T,dh]; padding [B,T] or undefined.
// unread_queries [B,Q] (or undefined): outputs the caller discards, which need not be computed.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, double dropout, bool training,
                     const torch::Tensor& unread_queries = {});

}  // namespace j2v::nn
