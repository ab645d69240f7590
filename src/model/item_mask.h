#pragma once
// The branch option `mask` at training time: which items of each branch are hidden (every
// field of the item and everything under it masked, then reconstructed).
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "schema/schema_tree.h"

namespace j2v {

// present: per branch, [B x slots] bool (the slot holds an item). rand(n): n uniform
// numbers in [0, 1). Returns per branch [B x slots] bool of hidden items (undefined where
// nothing is hidden), or an empty vector when no branch has a mask.
std::vector<torch::Tensor> hide_items(const SchemaTree& tree, const std::vector<torch::Tensor>& present,
                                      const std::function<torch::Tensor(int64_t)>& rand);

}  // namespace j2v
