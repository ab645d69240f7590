#pragma once
// ROC AUC of (score, is_positive) pairs: Mann-Whitney U with ties counted half. Returns -1
// when either class is absent.
#include <algorithm>
#include <utility>
#include <vector>

namespace j2v {

inline double roc_auc(std::vector<std::pair<float, bool>> scored) {
  std::sort(scored.begin(), scored.end());
  double pos = 0, neg = 0, rank_sum = 0;
  for (size_t i = 0; i < scored.size();) {
    size_t j = i;
    while (j < scored.size() && scored[j].first == scored[i].first) ++j;
    double avg_rank = (i + 1 + j) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (scored[k].second) { rank_sum += avg_rank; ++pos; } else { ++neg; }
    i = j;
  }
  if (pos == 0 || neg == 0) return -1;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

}  // namespace j2v
