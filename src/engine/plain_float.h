#pragma once
// The tensors the engine's per-step loops (optimizer, gradient reduction, weight copies,
// weight averaging, clipping) may treat as a plain float array: one pass over raw memory
// instead of a LibTorch operator per parameter, whose fixed cost dominated those steps for
// a model of many small tensors. Anything else takes the LibTorch operators.
#include <ATen/Tensor.h>

namespace j2v::engine {

inline bool is_plain_float32(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.layout() == at::kStrided && t.scalar_type() == at::kFloat &&
         t.is_contiguous();
}

}  // namespace j2v::engine
