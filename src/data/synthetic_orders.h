#pragma once
// Synthetic nested records with a signal only a nested model can see: orders whose line
// items carry a SKU and a price, flagged when one item is both a fragile SKU and expensive.
// Per-order aggregates (item count, price statistics, the commonest SKU) cannot tell which
// item is which, so a flattened model learns the label only in part. Used by the demo, the
// tests and the benchmarks, at any size, deterministically from a seed.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace j2v {

struct SyntheticOrdersOptions {
  int64_t rows = 1000;
  uint64_t seed = 0;
  int64_t max_items = 32;  // items per order: uniform in [1, max_items]
  // Per-order aggregates instead of the items list: the flattened view of the same orders.
  bool flatten = false;
};

// One JSON object per order, without a trailing newline. Order i is the same whatever
// `rows` is, so a file of 1,000 orders is a prefix of one of 1,000,000.
std::vector<std::string> synthetic_orders(const SyntheticOrdersOptions& options);
void write_synthetic_orders(std::ostream& out, const SyntheticOrdersOptions& options);

// The rule behind the `flagged` label, for tests and documentation.
bool synthetic_item_is_fragile(int sku);
inline constexpr double kSyntheticExpensivePrice = 80.0;

}  // namespace j2v
