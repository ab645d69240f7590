#include "nn/attention.h"

#include <cmath>

#include "nn/residual_dropout.h"
#include "nn/short_attention.h"

namespace j2v::nn {

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, double dropout, bool training) {
  if (short_attention_applies(q, k)) return short_attention(q, k, v, padding, dropout, training);
  double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, h, Q, T]
  if (padding.defined()) scores = scores.masked_fill(padding.unsqueeze(1).unsqueeze(2), -1e9);
  auto weights = torch::softmax(scores, -1);
  if (training && dropout > 0) weights = dropout_with_thread_generator(weights, dropout);
  return torch::matmul(weights, v);  // [B, h, Q, dh]
}

torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& positions) {
  int64_t dh = x.size(-1), half = dh / 2;
  auto inv_freq = torch::pow(10000.0, -torch::arange(0, half, x.options()) / static_cast<double>(half));
  auto angles = positions.to(x.dtype()).unsqueeze(1) * inv_freq.unsqueeze(0);  // [T, half]
  auto cos = angles.cos(), sin = angles.sin();
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  return dh % 2 ? torch::cat({rotated, x.narrow(-1, 2 * half, 1)}, -1) : rotated;
}

SelfAttentionImpl::SelfAttentionImpl(int64_t d_model, int64_t n_heads, double dropout, int64_t n_kv_heads)
    : n_heads_(n_heads), n_kv_heads_(n_kv_heads > 0 ? n_kv_heads : n_heads), dropout_(dropout) {
  TORCH_CHECK(d_model % n_heads == 0, "model.d_model (", d_model, ") must be divisible by model.n_heads (", n_heads, ")");
  TORCH_CHECK(n_heads % n_kv_heads_ == 0, "n_kv_heads (", n_kv_heads_, ") must divide n_heads (", n_heads, ")");
  int64_t dh = d_model / n_heads;
  if (n_kv_heads_ == n_heads_) {
    qkv_ = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
  } else {
    q_ = register_module("q", torch::nn::Linear(d_model, d_model));
    kv_ = register_module("kv", torch::nn::Linear(d_model, 2 * n_kv_heads_ * dh));
  }
  out_ = register_module("out", torch::nn::Linear(d_model, d_model));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& padding,
                                         const torch::Tensor& positions) {
  int64_t B = x.size(0), T = x.size(1), d = x.size(2), dh = d / n_heads_;
  torch::Tensor q, k, v;
  if (qkv_) {
    auto qkv = qkv_(x).view({B, T, 3, n_heads_, dh});
    auto slot = [&](int64_t i) { return qkv.select(2, i).transpose(1, 2); };  // [B, h, T, dh]
    if (!positions.defined() && short_attention_applies(slot(0), slot(1)))
      return out_(short_self_attention(qkv, padding, dropout_, is_training()).transpose(1, 2).reshape({B, T, d}));
    q = slot(0), k = slot(1), v = slot(2);
  } else {
    q = q_(x).view({B, T, n_heads_, dh}).transpose(1, 2);
    auto kv = kv_(x).view({B, T, 2, n_kv_heads_, dh}).permute({2, 0, 3, 1, 4});  // [2, B, kvh, T, dh]
    // Each key/value head serves n_heads / n_kv_heads query heads.
    k = kv[0].repeat_interleave(n_heads_ / n_kv_heads_, 1);
    v = kv[1].repeat_interleave(n_heads_ / n_kv_heads_, 1);
  }
  if (positions.defined()) {
    q = rotate(q, positions);
    k = rotate(k, positions);
  }
  auto y = attend(q, k, v, padding, dropout_, is_training());
  return out_(y.transpose(1, 2).reshape({B, T, d}));
}

}  // namespace j2v::nn
