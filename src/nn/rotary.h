#pragma once
// Rotary position embedding (RoFormer, Su et al. 2021): each pair (x_i, x_{i+dh/2}) of a
// head's query or key is rotated by position * 10000^(-i / (dh/2)), so that q.k depends on
// the positions' difference only.
#include <torch/torch.h>

namespace j2v::nn {

// x [..., T, dh] at positions [T] (integers). An odd dh's last component stays as it is.
// float32/float64 on the CPU run as one pass forward and one backward (the rotation's
// transpose); other tensors take LibTorch's operators.
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& positions);

}  // namespace j2v::nn
