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
// Compiled into json2vec's executables only (CMakeLists.txt: j2v_use_onednn_sgemm); a
// program built on the installed libraries keeps its BLAS.
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

namespace {

using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

// For real matrices a conjugate transpose is a transpose; oneDNN knows only N and T.
char plain_transpose(char flag) { return (flag == 'C' || flag == 'c') ? 'T' : flag; }

}  // namespace

extern "C" {

// The Fortran BLAS interface: column-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C.
// oneDNN's is row-major, where column-major C reads as C^T = op(B)^T op(A)^T: the same call
// with the operands, their flags and m, n swapped. With beta 0, C is written, never read.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) {
  if (dnnl_sgemm(plain_transpose(*transb), plain_transpose(*transa), *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c,
                 *ldc) == dnnl_success)
    return;
  static const auto next = reinterpret_cast<Sgemm>(dlsym(RTLD_NEXT, "sgemm_"));
  if (next) next(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // extern "C"
