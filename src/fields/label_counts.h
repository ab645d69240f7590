#pragma once
// How often each label occurs in training data, and the vocabulary it yields: the most
// frequent labels first, ties broken by label so a vocabulary never depends on thread order.
#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fields/label_index.h"

namespace j2v {

class LabelCounts {
 public:
  void add(std::string_view label, int64_t n = 1) {
    int64_t id = labels_.insert(label);
    if (static_cast<size_t>(id) >= counts_.size()) counts_.push_back(0);
    counts_[id] += n;
  }
  void merge(const LabelCounts& other) {
    for (size_t i = 0; i < other.labels_.size(); ++i) add(other.labels_.labels()[i], other.counts_[i]);
  }
  // Up to `limit` (label, count) pairs, most frequent first.
  std::vector<std::pair<std::string, int64_t>> most_frequent(size_t limit) const {
    std::vector<size_t> order(labels_.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (counts_[a] != counts_[b]) return counts_[a] > counts_[b];
      return labels_.labels()[a] < labels_.labels()[b];
    });
    order.resize(std::min(order.size(), limit));
    std::vector<std::pair<std::string, int64_t>> out;
    for (size_t i : order) out.emplace_back(labels_.labels()[i], counts_[i]);
    return out;
  }

 private:
  LabelIndex labels_;
  std::vector<int64_t> counts_;
};

}  // namespace j2v
