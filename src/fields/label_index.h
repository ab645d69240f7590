#pragma once
// A string -> id table looked up with string_views, so encoding a category cell never
// allocates. Open addressing with linear probing; ids are dense in insertion order.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace j2v {

class LabelIndex {
 public:
  static constexpr int64_t kNotFound = -1;

  int64_t find(std::string_view label) const {
    if (slots_.empty()) return kNotFound;
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(label) & mask;; i = (i + 1) & mask) {
      int64_t id = slots_[i];
      if (id < 0) return kNotFound;
      if (labels_[id] == label) return id;
    }
  }
  // Returns the label's id, adding it when new.
  int64_t insert(std::string_view label) {
    if ((labels_.size() + 1) * 2 > slots_.size()) grow();
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(label) & mask;; i = (i + 1) & mask) {
      int64_t id = slots_[i];
      if (id < 0) {
        slots_[i] = static_cast<int64_t>(labels_.size());
        labels_.emplace_back(label);
        return slots_[i];
      }
      if (labels_[id] == label) return id;
    }
  }
  const std::vector<std::string>& labels() const { return labels_; }
  size_t size() const { return labels_.size(); }

 private:
  static size_t hash(std::string_view s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a: labels are short
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
  void grow() {
    std::vector<int64_t> slots(slots_.empty() ? 16 : slots_.size() * 2, -1);
    size_t mask = slots.size() - 1;
    for (size_t id = 0; id < labels_.size(); ++id) {
      size_t i = hash(labels_[id]) & mask;
      while (slots[i] >= 0) i = (i + 1) & mask;
      slots[i] = static_cast<int64_t>(id);
    }
    slots_.swap(slots);
  }
  std::vector<std::string> labels_;
  std::vector<int64_t> slots_;
};

}  // namespace j2v
