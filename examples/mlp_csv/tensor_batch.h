#pragma once
// The batch the example's data module yields and its model reads: features and class indices.
#include <json2vec/engine.h>

namespace examples {

struct TensorBatch : j2v::engine::Batch {
  torch::Tensor x, y;
  int64_t size() const override { return x.size(0); }
};

}  // namespace examples
