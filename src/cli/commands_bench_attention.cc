// `json2vec bench attention`: forward and backward time of the short-sequence attention
// kernel (nn/short_attention.h) on a fused self-attention projection of json2vec's default
// width (d_model 64 over 4 heads), training with dropout, on one thread: the kernel's own
// cost, apart from the GEMMs and the rest of a training step. The defaults are a nested
// record's item level (7,000 items of 4 fields: a batch of 256 users with 27 items each);
// `--keys 50 --items 256 --absent 0.45` is its 50-slot history level.
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands_internal.h"
#include "cli/config.h"
#include "nn/short_attention.h"

namespace j2v::cli {

namespace {

struct AttentionBenchOptions {
  int64_t items = 7000, keys = 4, rounds = 20;
  double dropout = 0.1, absent = 0;
};

// A whole-number option within [low, high], refused naming the option otherwise.
int64_t count_option(const std::string& key, double number, double low, double high) {
  if (!(number >= low && number <= high))
    throw ConfigError(fmt::format("bench attention: --{} must be in [{}, {}], got {}", key, low, high, number));
  return static_cast<int64_t>(number);
}

// A probability within [0, 1).
double fraction_option(const std::string& key, double number) {
  if (!(number >= 0 && number < 1))
    throw ConfigError(fmt::format("bench attention: --{} must be in [0, 1), got {}", key, number));
  return number;
}

AttentionBenchOptions parse(const std::vector<std::string>& options) {
  AttentionBenchOptions o;
  for (const auto& kv : options) {
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    bool fraction = key == "dropout" || key == "absent";
    if (!fraction && key != "items" && key != "keys" && key != "rounds")
      throw ConfigError(fmt::format(
          "bench attention takes --items N, --keys T, --dropout P, --absent F and --rounds R, not --{}", key));
    double number = bench_number_option("attention", key, value, !fraction);
    if (key == "items") o.items = count_option(key, number, 1, 1e7);
    if (key == "keys") o.keys = count_option(key, number, 1, 128);  // short attention's range
    if (key == "rounds") o.rounds = count_option(key, number, 1, 1e4);
    if (key == "dropout") o.dropout = fraction_option(key, number);
    if (key == "absent") o.absent = fraction_option(key, number);
  }
  // The projection, its gradient and the weights must fit in memory: refused up front rather
  // than left to the allocator (with overcommit, a huge request is granted and fails later).
  constexpr double kMaxTokens = 1 << 20, kMaxWeights = 1 << 28;
  const double tokens = static_cast<double>(o.items) * static_cast<double>(o.keys);
  if (tokens > kMaxTokens || tokens * static_cast<double>(o.keys) * 4 > kMaxWeights)
    throw ConfigError(fmt::format("bench attention: --items {} x --keys {} is too large (at most {} tokens and {} "
                                  "attention weights); lower --items",
                                  o.items, o.keys, kMaxTokens, kMaxWeights));
  return o;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int run_bench_attention(const std::vector<std::string>& options) {
  const auto o = parse(options);
  torch::set_num_threads(1);
  torch::manual_seed(0);
  constexpr int64_t kHeads = 4, kHeadWidth = 16;
  auto qkv = torch::randn({o.items, o.keys, 3, kHeads, kHeadWidth}).requires_grad_();
  // Absent keys (a list's empty slots); each item keeps its first, as packed lists do.
  auto padding = torch::rand({o.items, o.keys}) < o.absent;
  padding.select(1, 0).fill_(false);
  torch::Tensor upstream;  // the output's gradient, in the output's own (heads-last) layout, as models pass it
  double forward_best = 1e300, backward_best = 1e300;
  for (int64_t round = 0; round < o.rounds + 2; ++round) {  // two warm-up rounds
    qkv.mutable_grad() = torch::Tensor();
    auto start = std::chrono::steady_clock::now();
    auto out = nn::short_self_attention(qkv, padding, o.dropout, /*training=*/true);
    double forward = milliseconds_since(start);
    if (!upstream.defined()) upstream = torch::randn_like(out);
    start = std::chrono::steady_clock::now();
    out.backward(upstream);
    double backward = milliseconds_since(start);
    if (round < 2) continue;
    forward_best = std::min(forward_best, forward);
    backward_best = std::min(backward_best, backward);
  }
  nlohmann::json out = {{"items", o.items},           {"keys", o.keys},
                        {"heads", kHeads},            {"head_width", kHeadWidth},
                        {"dropout", o.dropout},       {"absent", o.absent},
                        {"threads", 1},               {"rounds", o.rounds},
                        {"forward_ms", forward_best}, {"backward_ms", backward_best}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace j2v::cli
