#pragma once
// Scaled dot-product attention over short sequences, forward and backward as one CPU kernel
// each. A record's fields make sequences of a few to a few dozen tokens: there, LibTorch's
// bmm runs one tiny GEMM per (batch, head) through the dispatcher, and the broadcast
// multiply-and-sum alternative materialises [B, h, Q, T, dh] tensors that cost half a
// training step. This kernel keeps each (batch, head) pair's scores in registers and cache.
#include <torch/torch.h>

namespace j2v::nn {

// Whether short_attention serves these operands: CPU, float32 or float64, and a score
// matrix small enough that one (batch, head) pair's work fits in L1.
bool short_attention_applies(const torch::Tensor& q, const torch::Tensor& k);

// q [B,h,Q,dh], k and v [B,h,T,dh] (any strides, the last dimension dense or not);
// padding [B,T] bool (true = absent key) or undefined; dropout on the attention weights while
// training. Differentiable in q, k and v. Returns [B,h,Q,dh], laid out as [B,Q,h,dh] so that
// merging the heads is a view. unread_queries [B,Q] bool (or undefined): queries whose output
// the caller discards (the padding slots of packed rows); their rows are left zero and cost
// nothing, forward or backward.
torch::Tensor short_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& padding, double dropout, bool training,
                              const torch::Tensor& unread_queries = {});

// Self-attention whose operands are the slots of one fused projection, qkv [B, T, 3, h, dh]
// (a view of the projection's output): its gradient flows back as one tensor in that layout.
torch::Tensor short_self_attention(const torch::Tensor& qkv, const torch::Tensor& padding, double dropout,
                                   bool training, const torch::Tensor& unread_queries = {});

// Queries q [B, h, Q, dh] (learned ones may be expanded over the batch) over keys and values
// from one fused projection kv [B, T, 2, h, dh].
torch::Tensor short_cross_attention(const torch::Tensor& q, const torch::Tensor& kv, const torch::Tensor& padding,
                                    double dropout, bool training);

}  // namespace j2v::nn
