#include "engine/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <stdexcept>

// LibTorch 2.4 moved CPU autocast to device-generic calls; 1.13 (Debian) has the CPU-only ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define J2V_AUTOCAST_BY_DEVICE 1
#endif

// Defined by json2vec's executables (src/blas/onednn_sgemm.cc); absent (null) in a program
// that keeps LibTorch's own BLAS.
extern "C" __attribute__((weak)) bool j2v_sgemm_use_bf16(bool on);

namespace j2v::engine {

bool is_mixed_precision(const std::string& precision) {
  if (precision == "32-true" || precision == "32") return false;
  if (precision == "bf16-mixed") return true;
  throw std::invalid_argument("trainer.precision: '" + precision + "' is not supported (allowed: 32-true, bf16-mixed)");
}

bool set_float32_matmul_precision(const std::string& precision) {
  if (precision != "highest" && precision != "medium")
    throw std::invalid_argument("trainer.float32_matmul_precision: '" + precision +
                                "' is not supported (allowed: highest, medium)");
  if (j2v_sgemm_use_bf16 == nullptr) return false;
  return j2v_sgemm_use_bf16(precision == "medium");
}

PrecisionScope::PrecisionScope(bool bf16_mixed) : active_(bf16_mixed) {
  if (!active_) return;
#ifdef J2V_AUTOCAST_BY_DEVICE
  previous_enabled_ = at::autocast::is_autocast_enabled(at::kCPU);
  previous_dtype_ = static_cast<int>(at::autocast::get_autocast_dtype(at::kCPU));
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
#else
  previous_enabled_ = at::autocast::is_cpu_enabled();
  previous_dtype_ = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
  at::autocast::increment_nesting();
}

PrecisionScope::~PrecisionScope() {
  if (!active_) return;
  // The cast weights are cached for the scope's life only: the next step sees new weights.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#ifdef J2V_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCPU, previous_enabled_);
  at::autocast::set_autocast_dtype(at::kCPU, static_cast<at::ScalarType>(previous_dtype_));
#else
  at::autocast::set_cpu_enabled(previous_enabled_);
  at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(previous_dtype_));
#endif
}

}  // namespace j2v::engine
