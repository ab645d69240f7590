#pragma once
// Packed rows: the P rows of a [total, ...] tensor that exist (list slots holding an item,
// tokens present), given by their indices `rows` [P]. Blocks compute on those rows only and
// put the results back into place; the rows in between are zero.
#include <torch/torch.h>

namespace j2v::nn {

// [P, ...] -> [total, ...]: each packed row at its index, zeros elsewhere (differentiable).
inline torch::Tensor unpack_rows(const torch::Tensor& packed, const torch::Tensor& rows, int64_t total) {
  auto shape = packed.sizes().vec();
  shape[0] = total;
  return torch::zeros(shape, packed.options()).index_copy(0, rows, packed);
}

}  // namespace j2v::nn
