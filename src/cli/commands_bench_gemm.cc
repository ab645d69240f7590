// `json2vec bench gemm`: the float matrix-product rate of this machine, measured with the
// GEMM json2vec itself runs (oneDNN's where the executable carries src/blas/onednn_sgemm.cc,
// else LibTorch's BLAS). The training benchmarks state their FLOP bound against it; a rate
// measured in another process, with another BLAS (Python's OpenBLAS), understates what the
// machine does and overstates the share of the bound a model reaches. With
// --float32_matmul_precision medium it measures the bfloat16 products a run at that precision
// multiplies with (src/engine/precision.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/available_cores.h"
#include "cli/commands_internal.h"
#include "cli/config.h"
#include "engine/precision.h"

namespace j2v::cli {

namespace {

struct GemmShape {
  const char* name;
  int64_t m, k, n;
};

// Multiply-adds per second of out[m, n] = a[m, k] w[n, k]^T (a Linear layer's product), best
// of three timed rounds of at least min_seconds each: the machine's rate, not its noise.
double multiply_adds_per_second(const GemmShape& shape, double min_seconds) {
  auto a = torch::randn({shape.m, shape.k});
  auto w = torch::randn({shape.n, shape.k});
  auto out = torch::empty({shape.m, shape.n});
  for (int i = 0; i < 3; ++i) torch::mm_out(out, a, w.t());
  const double per_product = static_cast<double>(shape.m) * static_cast<double>(shape.k) * static_cast<double>(shape.n);
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    int64_t products = 0;
    auto start = std::chrono::steady_clock::now();
    double seconds = 0;
    do {
      torch::mm_out(out, a, w.t());
      ++products;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (seconds < min_seconds);
    best = std::max(best, per_product * static_cast<double>(products) / seconds);
  }
  return best;
}

}  // namespace

double bench_number_option(const std::string& bench, const std::string& key, const std::string& value, bool whole) {
  size_t parsed = 0;
  double number = 0;
  try {
    number = std::stod(value, &parsed);
  } catch (const std::logic_error&) {
    parsed = 0;
  }
  // "2x" is not 2: the whole value must be the number.
  if (parsed == 0 || parsed != value.size())
    throw ConfigError(fmt::format("bench {}: --{} needs a number, got '{}'", bench, key, value));
  if (whole && number != std::trunc(number))
    throw ConfigError(fmt::format("bench {}: --{} needs a whole number, got '{}'", bench, key, value));
  return number;
}

int run_bench_gemm(const std::vector<std::string>& options) {
  int threads = available_cores();
  double min_seconds = 0.5;
  std::string precision = "highest";
  for (const auto& kv : options) {
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (key == "float32_matmul_precision") {
      if (value != "highest" && value != "medium")
        throw ConfigError(fmt::format(
            "bench gemm: --float32_matmul_precision must be highest or medium, got '{}'", value));
      precision = value;
      continue;
    }
    if (key != "threads" && key != "seconds")
      throw ConfigError(fmt::format(
          "bench gemm takes --threads N, --seconds S and --float32_matmul_precision highest|medium, not --{}", key));
    double number = bench_number_option("gemm", key, value, key == "threads");
    if (key == "threads") threads = static_cast<int>(number);
    else min_seconds = number;
  }
  if (threads < 1) throw ConfigError("bench gemm: --threads must be >= 1");
  if (!(min_seconds > 0)) throw ConfigError("bench gemm: --seconds must be > 0");
  torch::set_num_threads(threads);
  const bool bf16_products = engine::set_float32_matmul_precision(precision);
  // Square: the rate a GEMM reaches when its operands are large enough to hide packing.
  // Thin: a batch of token rows through a d_model 64 -> 256 feed-forward layer, the shape of
  // json2vec's own largest products.
  const std::vector<GemmShape> shapes = {{"square", 4096, 1024, 1024}, {"thin", 51200, 64, 256}};
  nlohmann::json out = {{"threads", threads}, {"float32_matmul_precision", precision}, {"bf16_products", bf16_products}};
  for (const auto& shape : shapes)
    out[shape.name] = {{"m", shape.m},
                       {"k", shape.k},
                       {"n", shape.n},
                       {"multiply_adds_per_second", multiply_adds_per_second(shape, min_seconds)}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace j2v::cli
