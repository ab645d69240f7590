#pragma once
// Pools a token sequence into n_queries vectors by cross-attention from learned queries:
// how a record (or a branch) becomes one embedding, and how each decoded field gathers
// what it needs from the record.
#include <torch/torch.h>

namespace j2v::nn {

class LearnedQueryPoolingImpl : public torch::nn::Module {
 public:
  LearnedQueryPoolingImpl(int64_t d_model, int64_t n_heads, int64_t n_queries, double dropout);
  // x [B, T, d], padding [B, T] -> [B, n_queries, d]; with `which` ([Q'] int64) only
  // those queries are computed -> [B, Q', d].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& padding, const torch::Tensor& which = {});

 private:
  int64_t n_heads_;
  double dropout_;
  torch::Tensor queries_;
  torch::nn::Linear q_{nullptr}, kv_{nullptr}, out_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(LearnedQueryPooling);

}  // namespace j2v::nn
