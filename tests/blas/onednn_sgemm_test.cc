// LibTorch's float matrix products, served by oneDNN through json2vec's sgemm_
// (src/blas/onednn_sgemm.cc): bound ahead of OpenBLAS, and right for every layout LibTorch
// hands to BLAS (transposed operands, strided rows, vectors, empty products, beta 0 over
// garbage, alpha and beta); at float32 matmul precision "medium", products of the operands
// rounded to bfloat16, accumulated in float32.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <limits>

#include "engine/precision.h"

namespace {

extern "C" void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

TEST(OnednnSgemm, LibTorchsProductsBindToIt) {
#ifndef J2V_ONEDNN_SGEMM
  GTEST_SKIP() << "built without oneDNN's headers (libdnnl-dev): LibTorch keeps OpenBLAS";
#else
  // The sgemm_ every library in the process resolves is this executable's, not libblas's.
  Dl_info bound{}, ours{};
  ASSERT_NE(dladdr(dlsym(RTLD_DEFAULT, "sgemm_"), &bound), 0);
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&sgemm_), &ours), 0);
  EXPECT_STREQ(bound.dli_fname, ours.dli_fname);
  void* next = dlsym(RTLD_NEXT, "sgemm_");
  ASSERT_NE(next, nullptr) << "OpenBLAS's sgemm_ stays reachable for calls oneDNN refuses";
  Dl_info blas{};
  ASSERT_NE(dladdr(next, &blas), 0);
  EXPECT_STRNE(blas.dli_fname, ours.dli_fname);
#endif
}

double max_error(const torch::Tensor& got, const torch::Tensor& want) {
  if (want.numel() == 0) return 0.0;
  return (got.to(torch::kFloat64) - want).abs().max().item<double>() / (want.abs().max().item<double>() + 1.0);
}

// a x b, as LibTorch hands it to BLAS in each layout, within float32 accumulation of `want`:
// plain, transposed storage on either side, rows with a stride beyond their width, batched
// (bmm), and a linear layer's addmm with bias, alpha and beta.
void expect_every_layout_gives(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& want) {
  const int64_t k = a.size(1);
  EXPECT_LT(max_error(torch::mm(a, b), want), 1e-5);
  EXPECT_LT(max_error(torch::mm(a.t().contiguous().t(), b.t().contiguous().t()), want), 1e-5);
  auto wide_a = torch::randn({a.size(0), k + 3}).narrow(1, 0, k).copy_(a);
  EXPECT_LT(max_error(torch::mm(wide_a, b), want), 1e-5);
  EXPECT_LT(max_error(torch::bmm(a.unsqueeze(0).repeat({3, 1, 1}), b.unsqueeze(0).repeat({3, 1, 1})),
                      want.unsqueeze(0).repeat({3, 1, 1})),
            1e-5);
  auto bias = torch::randn({b.size(1)});
  EXPECT_LT(max_error(torch::addmm(bias, a, b, 0.5, 2.0), 0.5 * bias.to(torch::kFloat64) + 2.0 * want), 1e-5);
}

TEST(OnednnSgemm, ProductsOfEveryLayoutMatchFloat64) {
  torch::manual_seed(2);
  struct Shape {
    int64_t m, k, n;
  };
  for (auto [m, k, n] : std::vector<Shape>{{1280, 64, 256}, {33, 17, 5}, {1, 64, 64}, {64, 64, 1}, {7, 1, 9}}) {
    auto a = torch::randn({m, k}), b = torch::randn({k, n});
    SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n));
    expect_every_layout_gives(a, b, torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64)));
  }
  // An output full of NaN is overwritten, not read, when beta is 0 (torch::mm_out).
  auto a = torch::randn({40, 30}), b = torch::randn({30, 20});
  auto out = torch::full({40, 20}, std::numeric_limits<float>::quiet_NaN());
  torch::mm_out(out, a, b);
  EXPECT_FALSE(out.isnan().any().item<bool>());
  // An empty inner dimension gives zeros (beta 0) or the scaled input (addmm).
  EXPECT_TRUE(torch::equal(torch::mm(torch::randn({4, 0}), torch::randn({0, 3})), torch::zeros({4, 3})));
}

TEST(OnednnSgemm, TheBlasInterfaceItselfMatchesItsDefinition) {
  // Column-major C[m, n] = alpha op(A) op(B) + beta C, called as LibTorch calls it, with a
  // transposed A in lowercase and leading dimensions larger than the rows.
  const int m = 5, n = 4, k = 3, lda = k + 2, ldb = k + 1, ldc = m + 3;
  std::vector<float> a(lda * m), b(ldb * n), c(ldc * n, 1.0f);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) - 3.0f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 5) - 2.0f;
  const float alpha = 2.0f, beta = 0.5f;
  auto expected = c;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float sum = 0;
      for (int p = 0; p < k; ++p) sum += a[i * lda + p] * b[j * ldb + p];  // op(A)[i,p] = A[p,i]; B[p,j]
      expected[j * ldc + i] = alpha * sum + beta * c[j * ldc + i];
    }
  sgemm_("t", "N", &m, &n, &k, &alpha, a.data(), &lda, b.data(), &ldb, &beta, c.data(), &ldc);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < ldc; ++i) EXPECT_FLOAT_EQ(c[j * ldc + i], expected[j * ldc + i]) << i << "," << j;
}

// The operands as bfloat16 rounds them (to nearest, ties to even), in float64 for the reference.
torch::Tensor rounded_to_bf16(const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat64); }

// Puts the process back to float32 products whatever the test's outcome.
struct HighestAtExit {
  ~HighestAtExit() { j2v::engine::set_float32_matmul_precision("highest"); }
};

TEST(OnednnSgemm, AtMediumPrecisionProductsRoundTheirOperandsToBfloat16) {
  HighestAtExit restore;
  if (!j2v::engine::set_float32_matmul_precision("medium"))
    GTEST_SKIP() << "this CPU has no AVX-512 BF16 (or the build keeps OpenBLAS): products stay float32";
  torch::manual_seed(3);
  const int64_t m = 1280, k = 64, n = 256;
  auto a = torch::randn({m, k}), b = torch::randn({k, n});
  auto exact = torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64));
  auto of_rounded = torch::mm(rounded_to_bf16(a), rounded_to_bf16(b));
  // Only the accumulation's float32 rounding separates it from the rounded operands' product,
  // while the operands' rounding (8 bits of mantissa) shows against the exact one.
  EXPECT_LT(max_error(torch::mm(a, b), of_rounded), 1e-5);
  EXPECT_GT(max_error(torch::mm(a, b), exact), 1e-4);
  // Every layout LibTorch hands over, and an output of NaN that beta 0 must not read.
  expect_every_layout_gives(a, b, of_rounded);
  auto out = torch::full({m, n}, std::numeric_limits<float>::quiet_NaN());
  torch::mm_out(out, a, b);
  EXPECT_LT(max_error(out, of_rounded), 1e-5);
  // A NaN operand still poisons its row and only its row.
  auto poisoned = a.clone();
  poisoned[7][3] = std::numeric_limits<float>::quiet_NaN();
  auto product = torch::mm(poisoned, b);
  EXPECT_TRUE(product[7].isnan().all().item<bool>());
  EXPECT_FALSE(product.narrow(0, 8, m - 8).isnan().any().item<bool>());

  // Empty products are still empty or zero.
  EXPECT_EQ(torch::mm(torch::randn({0, 64}), torch::randn({64, 32})).numel(), 0);
  EXPECT_TRUE(torch::equal(torch::mm(torch::randn({40, 0}), torch::randn({0, 30})), torch::zeros({40, 30})));

  ASSERT_FALSE(j2v::engine::set_float32_matmul_precision("highest"));
  EXPECT_LT(max_error(torch::mm(a, b), exact), 1e-5);
  EXPECT_THROW(j2v::engine::set_float32_matmul_precision("high"), std::invalid_argument);
}

}  // namespace
