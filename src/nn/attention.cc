#include "nn/attention.h"

#include <cmath>

#include "nn/packed_rows.h"
#include "nn/residual_dropout.h"
#include "nn/rotary.h"
#include "nn/short_attention.h"

namespace j2v::nn {

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, double dropout, bool training, const torch::Tensor& unread_queries) {
  if (short_attention_applies(q, k)) return short_attention(q, k, v, padding, dropout, training, unread_queries);
  double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, h, Q, T]
  if (padding.defined()) scores = scores.masked_fill(padding.unsqueeze(1).unsqueeze(2), -1e9);
  auto weights = torch::softmax(scores, -1);
  if (training && dropout > 0) weights = dropout_with_thread_generator(weights, dropout);
  return torch::matmul(weights, v);  // [B, h, Q, dh]
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
                                         const torch::Tensor& positions, const torch::Tensor& rows) {
  bool packed = rows.defined();
  TORCH_CHECK(!packed || (padding.defined() && x.dim() == 2), "packed attention needs [P, d] rows and the padding");
  int64_t B = packed ? padding.size(0) : x.size(0), T = packed ? padding.size(1) : x.size(1);
  int64_t d = x.size(-1), dh = d / n_heads_;
  // [P, w] projections back onto the [B, T, w] grid; the grid's other tokens are zeros.
  auto on_grid = [&](const torch::Tensor& projected) {
    return packed ? unpack_rows(projected, rows, B * T).view({B, T, projected.size(1)}) : projected;
  };
  // The grid's other tokens: their attention outputs are dropped below, so none is computed.
  torch::Tensor unread;
  if (packed) unread = torch::ones({B * T}, torch::kBool).index_fill_(0, rows, false).view({B, T});
  // [B, T, d] attention output -> the out projection of the tokens asked for.
  auto output = [&](const torch::Tensor& y) {
    auto grid = y.reshape({B * T, d});
    return out_(packed ? grid.index_select(0, rows) : grid.view({B, T, d}));
  };
  torch::Tensor q, k, v;
  if (qkv_) {
    auto qkv = on_grid(qkv_(x)).view({B, T, 3, n_heads_, dh});
    auto slot = [&](int64_t i) { return qkv.select(2, i).transpose(1, 2); };  // [B, h, T, dh]
    if (!positions.defined() && short_attention_applies(slot(0), slot(1)))
      return output(short_self_attention(qkv, padding, dropout_, is_training(), unread).transpose(1, 2));
    q = slot(0), k = slot(1), v = slot(2);
  } else {
    q = on_grid(q_(x)).view({B, T, n_heads_, dh}).transpose(1, 2);
    auto kv = on_grid(kv_(x)).view({B, T, 2, n_kv_heads_, dh}).permute({2, 0, 3, 1, 4});  // [2, B, kvh, T, dh]
    // Each key/value head serves n_heads / n_kv_heads query heads.
    k = kv[0].repeat_interleave(n_heads_ / n_kv_heads_, 1);
    v = kv[1].repeat_interleave(n_heads_ / n_kv_heads_, 1);
  }
  if (positions.defined()) {
    q = rotate(q, positions);
    k = rotate(k, positions);
  }
  return output(attend(q, k, v, padding, dropout_, is_training(), unread).transpose(1, 2));
}

}  // namespace j2v::nn
