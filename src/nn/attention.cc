#include "nn/attention.h"

#include <cmath>

namespace j2v::nn {

namespace {
// LibTorch's CPU bmm runs one tiny GEMM per (batch, head) through the dispatcher, which
// dominated training time on records of a few dozen fields. For short sequences the same
// products as broadcast multiply + sum are a handful of vectorised kernels instead.
bool use_broadcast(const torch::Tensor& q, const torch::Tensor& k) {
  return q.device().is_cpu() && q.size(-2) * k.size(-2) * q.size(-1) <= (1 << 14);
}
}  // namespace

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, double dropout, bool training) {
  double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  bool broadcast = use_broadcast(q, k);
  // [B, h, Q, T]
  auto scores = broadcast ? (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) * scale
                          : torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (padding.defined()) scores = scores.masked_fill(padding.unsqueeze(1).unsqueeze(2), -1e9);
  auto weights = torch::softmax(scores, -1);
  if (training && dropout > 0) weights = torch::dropout(weights, dropout, true);
  // [B, h, Q, dh]
  return broadcast ? (weights.unsqueeze(-1) * v.unsqueeze(-3)).sum(-2) : torch::matmul(weights, v);
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
