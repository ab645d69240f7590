#pragma once
// Training precision (Lightning's `precision`): "32-true" runs in float32; "bf16-mixed" runs
// each step's forward pass under CPU autocast to bfloat16 (matrix products in bfloat16,
// reductions and losses in float32), with float32 weights and optimizer state.
#include <string>

namespace j2v::engine {

bool is_mixed_precision(const std::string& precision);  // throws std::invalid_argument for unknown values

// trainer.float32_matmul_precision, as torch.set_float32_matmul_precision: "highest" multiplies
// float32 matrices in float32; "medium" lets each product round its operands to bfloat16 and
// accumulate in float32 (about twice the GEMM rate on a CPU with AVX-512 BF16). Process-wide,
// like torch's. Returns whether bfloat16 products are now in effect: never where the CPU lacks
// AVX-512 BF16 or the program does not link json2vec's GEMM (src/blas/onednn_sgemm.cc).
// Throws std::invalid_argument for other values.
bool set_float32_matmul_precision(const std::string& precision);

// Autocast for the current thread while alive (replica threads open their own).
class PrecisionScope {
 public:
  explicit PrecisionScope(bool bf16_mixed);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  bool active_;
  bool previous_enabled_ = false;
  int previous_dtype_ = 0;
};

}  // namespace j2v::engine
