#pragma once
// Training precision (Lightning's `precision`): "32-true" runs in float32; "bf16-mixed" runs
// each step's forward pass under CPU autocast to bfloat16 (matrix products in bfloat16,
// reductions and losses in float32), with float32 weights and optimizer state.
#include <string>

namespace j2v::engine {

bool is_mixed_precision(const std::string& precision);  // throws std::invalid_argument for unknown values

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
