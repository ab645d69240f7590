#include "nn/residual_dropout.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "nn/random.h"

namespace j2v::nn {

namespace {

// Four keep decisions per 64-bit hash: 16 bits each, so p is honoured to 1/65536.
constexpr int64_t kPerHash = 4;

// SplitMix64's finaliser: a bijective mix whose outputs for consecutive counters pass
// BigCrush, ample for dropout masks.
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Mask {
  uint64_t seed;
  uint32_t drop_below;  // a 16-bit draw below this drops the element
  double scale;         // 1 / (1 - p)
};

Mask draw_mask(double p) {
  uint64_t seed = nn::thread_random64();
  return {seed, static_cast<uint32_t>(p * 65536.0 + 0.5), 1.0 / (1.0 - p)};
}

// out[e] = base[e] + x[e] * keep(e) * scale, where base may be null (then out = x * keep * scale).
template <typename T>
void apply_mask(const Mask& mask, const T* base, const T* x, T* out, int64_t n) {
  const T scale = static_cast<T>(mask.scale);
  int64_t hashes = (n + kPerHash - 1) / kPerHash;
  at::parallel_for(0, hashes, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h) {
      uint64_t bits = mix(mask.seed + static_cast<uint64_t>(h) * 0x9e3779b97f4a7c15ULL);
      int64_t first = h * kPerHash, last = std::min(n, first + kPerHash);
      for (int64_t e = first; e < last; ++e, bits >>= 16) {
        T kept = (bits & 0xffff) >= mask.drop_below ? x[e] * scale : T(0);
        out[e] = base ? base[e] + kept : kept;
      }
    }
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
    Mask mask = draw_mask(p);
    ctx->saved_data["seed"] = static_cast<int64_t>(mask.seed);
    ctx->saved_data["drop_below"] = static_cast<int64_t>(mask.drop_below);
    ctx->saved_data["scale"] = mask.scale;
    return masked(mask, residual, branch);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    Mask mask{static_cast<uint64_t>(ctx->saved_data["seed"].toInt()),
              static_cast<uint32_t>(ctx->saved_data["drop_below"].toInt()), ctx->saved_data["scale"].toDouble()};
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
