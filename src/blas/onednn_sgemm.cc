// LibTorch's float matrix products on oneDNN instead of OpenBLAS.
//
// LibTorch (Debian's 1.13) computes every float mm/addmm/bmm on the CPU through the BLAS
// routine sgemm_. json2vec's products are thin (thousands of rows by 64 to 256 columns),
// where OpenBLAS spends a third of its time packing operands and zeroing outputs; oneDNN's
// JIT kernels run them 15-30% faster each, and a diamonds training epoch 14% faster whole
// (bench/train/run.sh). An executable that links this file defines sgemm_ itself, and the
// dynamic linker then binds LibTorch's calls to it ahead of libblas (symbol interposition).
// Calls oneDNN refuses (an argument out of its range) go to the next sgemm_, OpenBLAS's.
//
// At float32 matmul precision "medium" (torch.set_float32_matmul_precision's word; set through
// j2v_sgemm_use_bf16, which engine/precision.cc calls) the operands are rounded to bfloat16
// and multiplied by oneDNN's bf16 GEMM, which accumulates and writes float32. On a CPU with
// AVX-512 BF16 that GEMM runs about twice the float32 rate (json2vec bench gemm); elsewhere
// oneDNN would emulate it, slower than float32, so "medium" is then not taken.
//
// Compiled into json2vec's executables only (CMakeLists.txt: j2v_use_onednn_sgemm); a
// program built on the installed libraries keeps its BLAS.
#include <dlfcn.h>
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

// Exported by libdnnl (the API LibTorch's own bf16 products use) but left out of 2.x's public
// header; row-major like dnnl_sgemm, bfloat16 operands as raw 16-bit words.
extern "C" dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K,
                                               float alpha, const uint16_t* A, dnnl_dim_t lda, const uint16_t* B,
                                               dnnl_dim_t ldb, float beta, float* C, dnnl_dim_t ldc);

namespace {

using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

std::atomic<bool> bf16_products{false};

// For real matrices a conjugate transpose is a transpose; oneDNN knows only N and T.
char plain_transpose(char flag) { return (flag == 'C' || flag == 'c') ? 'T' : flag; }
bool transposed(char flag) { return flag != 'N' && flag != 'n'; }

// Round to nearest even, as the hardware instruction does (a NaN stays a NaN).
uint16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) void to_bf16_run(const float* from, uint16_t* to, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(from + i + 16), _mm512_loadu_ps(from + i));
    _mm512_storeu_si512(to + i, reinterpret_cast<__m512i>(pair));
  }
  for (; i < n; ++i) to[i] = to_bf16(from[i]);
}

// A column-major matrix of `rows` x `cols` with leading dimension `ld`, packed as bfloat16 with
// leading dimension `rows` into a buffer this thread keeps between calls.
const uint16_t* packed_bf16(const float* matrix, int64_t rows, int64_t cols, int64_t ld, std::vector<uint16_t>& buffer) {
  buffer.resize(static_cast<size_t>(rows * cols));
  for (int64_t col = 0; col < cols; ++col) to_bf16_run(matrix + col * ld, buffer.data() + col * rows, rows);
  return buffer.data();
}

// Rounding the operands costs a pass over each; it pays when every element takes part in
// enough products (m*n/(m+n) of them) and the inner dimension is long enough to matter.
bool worth_bf16(int m, int n, int k) {
  return k >= 16 && m > 0 && n > 0 && static_cast<int64_t>(m) * n >= 16 * (static_cast<int64_t>(m) + n);
}

bool sgemm_as_bf16(char transa, char transb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                   int ldb, float beta, float* c, int ldc) {
  thread_local std::vector<uint16_t> a16, b16;
  const bool ta = transposed(transa), tb = transposed(transb);
  // op(A) is m x k: stored k x m when transposed. op(B) is k x n likewise.
  const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
  const int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
  const uint16_t* pa = packed_bf16(a, a_rows, a_cols, lda, a16);
  const uint16_t* pb = packed_bf16(b, b_rows, b_cols, ldb, b16);
  // Row-major view of column-major C: C^T = op(B)^T op(A)^T, as in sgemm_ below.
  return dnnl_gemm_bf16bf16f32(tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, alpha, pb, b_rows, pa, a_rows, beta, c, ldc) ==
         dnnl_success;
}

}  // namespace

extern "C" {

// Turns bfloat16 products on or off for every thread; returns whether they are now on (never,
// on a CPU without AVX-512 BF16).
bool j2v_sgemm_use_bf16(bool on) {
  static const bool supported = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  bf16_products.store(on && supported, std::memory_order_relaxed);
  return on && supported;
}

// The Fortran BLAS interface: column-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C.
// oneDNN's is row-major, where column-major C reads as C^T = op(B)^T op(A)^T: the same call
// with the operands, their flags and m, n swapped. With beta 0, C is written, never read.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) {
  if (bf16_products.load(std::memory_order_relaxed) && worth_bf16(*m, *n, *k) &&
      sgemm_as_bf16(*transa, *transb, *m, *n, *k, *alpha, a, *lda, b, *ldb, *beta, c, *ldc))
    return;
  if (dnnl_sgemm(plain_transpose(*transb), plain_transpose(*transa), *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c,
                 *ldc) == dnnl_success)
    return;
  static const auto next = reinterpret_cast<Sgemm>(dlsym(RTLD_NEXT, "sgemm_"));
  if (next) next(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // extern "C"
