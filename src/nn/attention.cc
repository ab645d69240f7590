#include "nn/attention.h"

#include <cmath>

namespace j2v::nn {

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, double dropout, bool training) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (padding.defined()) scores = scores.masked_fill(padding.unsqueeze(1).unsqueeze(2), -1e9);
  auto weights = torch::softmax(scores, -1);
  if (training && dropout > 0) weights = torch::dropout(weights, dropout, true);
  return torch::matmul(weights, v);
}

SelfAttentionImpl::SelfAttentionImpl(int64_t d_model, int64_t n_heads, double dropout)
    : n_heads_(n_heads), dropout_(dropout) {
  TORCH_CHECK(d_model % n_heads == 0, "model.d_model (", d_model, ") must be divisible by model.n_heads (", n_heads, ")");
  qkv_ = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
  out_ = register_module("out", torch::nn::Linear(d_model, d_model));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& padding) {
  int64_t B = x.size(0), T = x.size(1), d = x.size(2), dh = d / n_heads_;
  auto qkv = qkv_(x).view({B, T, 3, n_heads_, dh}).permute({2, 0, 3, 1, 4});  // [3, B, h, T, dh]
  auto y = attend(qkv[0], qkv[1], qkv[2], padding, dropout_, is_training());
  return out_(y.transpose(1, 2).reshape({B, T, d}));
}

}  // namespace j2v::nn
