#pragma once
// A transformer block's feed-forward, out(gelu(in(x))), as one autograd function that runs
// in chunks of rows: each chunk's hidden activations, [rows, 4 d], are made, activated and
// projected back while they are in the core's cache. Unfused, the [tokens, 4 d] hidden
// tensor went through memory a dozen times a step (bias add, GELU, its gradient, the bias
// gradient, the two weight gradients); here twice (written in forward, read in backward).
#include <torch/torch.h>

namespace j2v::nn {

// x [..., d_in]; in_weight [hidden, d_in], in_bias [hidden]; out_weight [d_out, hidden],
// out_bias [d_out] (torch::nn::Linear's layout). Returns [..., d_out]. Float32 CPU tensors
// take the chunked path; others the three LibTorch operators.
torch::Tensor feed_forward(const torch::Tensor& x, const torch::Tensor& in_weight, const torch::Tensor& in_bias,
                           const torch::Tensor& out_weight, const torch::Tensor& out_bias);

}  // namespace j2v::nn
