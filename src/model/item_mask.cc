#include "model/item_mask.h"

namespace j2v {

std::vector<torch::Tensor> hide_items(const SchemaTree& tree, const std::vector<torch::Tensor>& present,
                                      const std::function<torch::Tensor(int64_t)>& rand) {
  // Parents come first (pre-order), so a hidden item's whole subtree is hidden with it.
  std::vector<torch::Tensor> hidden(tree.branches.size());
  bool any = false;
  for (size_t b = 1; b < tree.branches.size(); ++b) {
    const auto& node = tree.branches[b];
    const auto& mask = node.mask;
    torch::Tensor mine;
    if (mask.enabled) {
      int64_t L = node.length, N = present[b].numel() / L;
      auto in_list = present[b].view({N, L});
      auto n = in_list.sum(1, /*keepdim=*/true);  // items per list [N, 1]
      auto position = torch::arange(L, torch::kLong).unsqueeze(0);
      if (mask.window == BranchMask::Window::kRandom && mask.count == 0) {
        mine = rand(N * L).view({N, L}) < mask.rate;
      } else {
        auto k = mask.count > 0 ? torch::full_like(n, mask.count)
                                : (n.to(torch::kDouble) * mask.rate).ceil().to(torch::kLong);
        if (mask.window == BranchMask::Window::kStart) {
          mine = position < k;
        } else if (mask.window == BranchMask::Window::kEnd) {
          mine = position >= n - k;
        } else {  // `count` random items: the k smallest of random scores among the items
          auto scores = rand(N * L).view({N, L}).masked_fill(in_list.logical_not(), 2.0);
          mine = std::get<1>(scores.sort(1)).argsort(/*dim=*/int64_t{1}) < k;
        }
      }
      if (mask.p < 1) mine = mine.logical_and((rand(N) < mask.p).unsqueeze(1));
      mine = mine.logical_and(in_list).reshape({-1});
    }
    const auto& above = hidden[node.parent];
    if (above.defined()) {
      auto inherited = above.repeat_interleave(node.length).logical_and(present[b]);
      mine = mine.defined() ? mine.logical_or(inherited) : inherited;
    }
    hidden[b] = mine;
    any = any || mine.defined();
  }
  if (!any) hidden.clear();
  return hidden;
}

}  // namespace j2v
