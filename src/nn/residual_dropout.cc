#include "nn/residual_dropout.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "nn/counter_dropout.h"
#include "nn/random.h"
#include "nn/vector_math.h"

namespace j2v::nn {

namespace {

using Mask = CounterDropout;
constexpr int64_t kPerHash = CounterDropout::kPerHash;

// Keep decisions for a run of hashes go to a small stack block of bit masks (all ones or
// zero) first, so that the pass over the elements is one branch-free loop of a multiply and
// an AND that GCC vectorises; drawing and applying in one loop kept a data-dependent branch
// per element and ran scalar, and a float select would not vectorise without
// -fno-trapping-math.
constexpr int64_t kBlockElements = 512;

template <typename T>
using MaskBits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

// Inlined with count == kBlockElements, the trip count is a constant and GCC's -O2 cost
// model vectorises the loop (it will not add a scalar epilogue for an unknown count).
template <typename T, bool kHasBase>
inline __attribute__((always_inline)) void apply_keep(const MaskBits<T>* keep, T scale, const T* bases, const T* xs,
                                                      T* outs, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    T scaled = xs[i] * scale;
    MaskBits<T> bits;
    std::memcpy(&bits, &scaled, sizeof bits);
    bits &= keep[i];
    T kept;
    std::memcpy(&kept, &bits, sizeof kept);
    if constexpr (kHasBase)
      outs[i] = bases[i] + kept;
    else
      outs[i] = kept;
  }
}

// out[e] = base[e] + x[e] * keep(e) * scale, where base may be absent (then out = x * keep * scale).
// A dropped element is exactly 0 (a bit mask, not a multiply), even where x is infinite or NaN.
// The hashes of a block are computed in a loop of their own, which vectorises (AVX-512's
// 64-bit multiply, in the x86-64-v4 clone below); drawn inside the expansion loop they ran
// one at a time and were 4% of a nested training step.
template <typename T, bool kHasBase>
J2V_ALWAYS_INLINE inline void apply_mask_to_hashes(const Mask& mask, const T* base, const T* x, T* out, int64_t n,
                                                   int64_t first_hash, int64_t end_hash) {
  const T scale = static_cast<T>(mask.scale);
  alignas(64) MaskBits<T> keep[kBlockElements];
  constexpr int64_t kHashesPerBlock = kBlockElements / kPerHash;
  alignas(64) uint64_t hashes[kHashesPerBlock];
  for (int64_t block = first_hash; block < end_hash; block += kHashesPerBlock) {
    int64_t block_end = std::min(end_hash, block + kHashesPerBlock);
    for (int64_t k = 0; k < kHashesPerBlock; ++k)
      hashes[k] = mask.hash(static_cast<uint64_t>(block + k));
    for (int64_t k = 0; k < kHashesPerBlock * kPerHash; ++k) {
      uint64_t draw = (hashes[k / kPerHash] >> (16 * (k % kPerHash))) & 0xffff;
      keep[k] = MaskBits<T>(0) - static_cast<MaskBits<T>>(draw >= mask.drop_below);
    }
    int64_t first = block * kPerHash, count = std::min(n, block_end * kPerHash) - first;
    const T* bases = kHasBase ? base + first : nullptr;
    if (count == kBlockElements)
      apply_keep<T, kHasBase>(keep, scale, bases, x + first, out + first, kBlockElements);
    else
      apply_keep<T, kHasBase>(keep, scale, bases, x + first, out + first, count);
  }
}

J2V_VECTOR_CLONES void mask_with_base(const Mask& mask, const float* base, const float* x, float* out, int64_t n,
                                      int64_t first_hash, int64_t end_hash) {
  apply_mask_to_hashes<float, true>(mask, base, x, out, n, first_hash, end_hash);
}
J2V_VECTOR_CLONES void mask_alone(const Mask& mask, const float* base, const float* x, float* out, int64_t n,
                                  int64_t first_hash, int64_t end_hash) {
  apply_mask_to_hashes<float, false>(mask, base, x, out, n, first_hash, end_hash);
}
J2V_VECTOR_CLONES void mask_with_base(const Mask& mask, const double* base, const double* x, double* out, int64_t n,
                                      int64_t first_hash, int64_t end_hash) {
  apply_mask_to_hashes<double, true>(mask, base, x, out, n, first_hash, end_hash);
}
J2V_VECTOR_CLONES void mask_alone(const Mask& mask, const double* base, const double* x, double* out, int64_t n,
                                  int64_t first_hash, int64_t end_hash) {
  apply_mask_to_hashes<double, false>(mask, base, x, out, n, first_hash, end_hash);
}

template <typename T>
void apply_mask(const Mask& mask, const T* base, const T* x, T* out, int64_t n) {
  int64_t hashes = (n + kPerHash - 1) / kPerHash;
  at::parallel_for(0, hashes, 4096, [&](int64_t begin, int64_t end) {
    if (base)
      mask_with_base(mask, base, x, out, n, begin, end);
    else
      mask_alone(mask, base, x, out, n, begin, end);
  });
}

torch::Tensor masked(const Mask& mask, const torch::Tensor& base, const torch::Tensor& x) {
  auto out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "residual_dropout", [&] {
    apply_mask<scalar_t>(mask, base.defined() ? base.data_ptr<scalar_t>() : nullptr, x.data_ptr<scalar_t>(),
                         out.data_ptr<scalar_t>(), x.numel());
  });
  return out;
}

class ResidualDropoutFunction : public torch::autograd::Function<ResidualDropoutFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& residual,
                               const torch::Tensor& branch, double p) {
    Mask mask = Mask::draw(p);
    ctx->saved_data["seed"] = static_cast<int64_t>(mask.seed);
    ctx->saved_data["p"] = p;
    return masked(mask, residual, branch);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    Mask mask = Mask::replay(static_cast<uint64_t>(ctx->saved_data["seed"].toInt()), ctx->saved_data["p"].toDouble());
    auto grad = grads[0].contiguous();
    return {grad, masked(mask, torch::Tensor(), grad), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor dropout_with_thread_generator(const torch::Tensor& x, double p) {
  auto keep = torch::rand(x.sizes(), nn::thread_generator(), x.options()) >= p;
  return x * keep.to(x.dtype()) / (1.0 - p);
}

torch::Tensor residual_dropout(const torch::Tensor& residual, const torch::Tensor& branch, double p, bool training) {
  TORCH_CHECK(p >= 0 && p < 1, "dropout probability must be in [0, 1), got ", p);
  if (!training || p == 0) return residual + branch;
  auto type = branch.scalar_type();
  bool fused = branch.device().is_cpu() && (type == torch::kFloat32 || type == torch::kFloat64) &&
               residual.scalar_type() == type && residual.sizes() == branch.sizes();
  if (!fused) return residual + dropout_with_thread_generator(branch, p);
  return ResidualDropoutFunction::apply(residual.contiguous(), branch.contiguous(), p);
}

}  // namespace j2v::nn
