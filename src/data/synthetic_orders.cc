#include "data/synthetic_orders.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

namespace j2v {

namespace {
constexpr int kSkus = 40;
constexpr int kSellers = 12;
const char* kTiers[] = {"bronze", "silver", "gold"};
const char* kTags[] = {"gift", "sale", "bulk", "new"};
const char* kNotes[] = {"",  "", "", "leave at the door", "please gift wrap", "call on arrival",
                        "deliver after 5pm", "fragile, handle with care", "no plastic packaging please"};

struct Item {
  int sku;
  double price;
  int seller;
  int quantity;
  std::vector<const char*> tags;
  bool returned;
};

std::string order_json(int64_t index, uint64_t seed, const SyntheticOrdersOptions& o) {
  // One generator per order, seeded by (seed, index): orders do not depend on each other.
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index),
                    static_cast<uint32_t>(index >> 32)};
  std::mt19937_64 rng(seq);
  std::uniform_int_distribution<int> n_items(1, static_cast<int>(std::max<int64_t>(1, o.max_items)));
  std::uniform_int_distribution<int> sku(0, kSkus - 1), seller(0, kSellers - 1), tier(0, 2), tag(0, 3);
  std::normal_distribution<double> log_price(3.5, 0.8);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const char* customer_tier = kTiers[tier(rng)];
  int n = n_items(rng);
  std::vector<Item> items;
  bool flagged = false;
  for (int i = 0; i < n; ++i) {
    Item it;
    it.sku = sku(rng);
    it.price = std::round(std::exp(log_price(rng)) * 100.0) / 100.0;
    it.seller = seller(rng);
    int n_tags = static_cast<int>(unit(rng) * 3.0);
    for (int t = 0; t < n_tags; ++t) it.tags.push_back(kTags[tag(rng)]);
    // Returns: expensive items from the first three sellers, and a little noise.
    it.returned = (it.seller < 3 && it.price > 50.0) != (unit(rng) < 0.03);
    it.quantity = 1 + static_cast<int>(unit(rng) * 4);
    flagged = flagged || (synthetic_item_is_fragile(it.sku) && it.price > kSyntheticExpensivePrice);
    items.push_back(std::move(it));
  }
  int day = 1 + static_cast<int>(unit(rng) * 28), hour = static_cast<int>(unit(rng) * 24);
  std::string placed_at = fmt::format("2024-{:02d}-{:02d}T{:02d}:{:02d}:00Z", 1 + index % 12, day, hour,
                                      static_cast<int>(unit(rng) * 60));
  // Drawn last, so adding the note left every other value of an order as it was.
  const char* note = kNotes[static_cast<int>(unit(rng) * (sizeof(kNotes) / sizeof(kNotes[0])))];
  std::string out = fmt::format(R"({{"order_id":{},"customer_tier":"{}","placed_at":"{}","note":"{}",)", index,
                                customer_tier, placed_at, note);
  if (o.flatten) {
    double total = 0, max_price = 0, min_price = 1e300;
    std::map<int, int> sku_count;
    for (const auto& it : items) {
      total += it.price;
      max_price = std::max(max_price, it.price);
      min_price = std::min(min_price, it.price);
      ++sku_count[it.sku];
    }
    int top_sku = std::max_element(sku_count.begin(), sku_count.end(), [](const auto& a, const auto& b) {
                    return a.second < b.second;
                  })->first;
    out += fmt::format(
        R"("n_items":{},"total":{:.2f},"mean_price":{:.2f},"max_price":{:.2f},"min_price":{:.2f},"distinct_skus":{},"top_sku":"sku-{}",)",
        n, total, total / n, max_price, min_price, sku_count.size(), top_sku);
  } else {
    out += R"("items":[)";
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& it = items[i];
      std::string tags;
      for (size_t t = 0; t < it.tags.size(); ++t) tags += fmt::format("{}\"{}\"", t ? "," : "", it.tags[t]);
      out += fmt::format(R"({}{{"sku":"sku-{}","price":{},"quantity":{},"seller":"seller-{}","tags":[{}],"returned":{}}})",
                         i ? "," : "", it.sku, it.price, it.quantity, it.seller, tags, it.returned ? "true" : "false");
    }
    out += "],";
  }
  out += fmt::format(R"("flagged":"{}"}})", flagged ? "yes" : "no");
  return out;
}
}  // namespace

bool synthetic_item_is_fragile(int sku) { return sku % 4 == 0; }

std::vector<std::string> synthetic_orders(const SyntheticOrdersOptions& options) {
  std::vector<std::string> rows;
  rows.reserve(static_cast<size_t>(std::max<int64_t>(0, options.rows)));
  for (int64_t i = 0; i < options.rows; ++i) rows.push_back(order_json(i, options.seed, options));
  return rows;
}

void write_synthetic_orders(std::ostream& out, const SyntheticOrdersOptions& options) {
  for (int64_t i = 0; i < options.rows; ++i) out << order_json(i, options.seed, options) << '\n';
}

}  // namespace j2v
