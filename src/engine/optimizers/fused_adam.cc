#include "engine/optimizers/fused_adam.h"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <cmath>

#include "engine/plain_float.h"

namespace j2v::engine {

namespace {

// What one step of one parameter needs, with every constant rounded to float once, as
// LibTorch's float kernels round their scalar arguments.
struct AdamStep {
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float sqrt_bias_correction2;
  float eps;
  float negative_step_size;
  float l2_decay;         // Adam: added to the gradient
  float decoupled_scale;  // AdamW: the parameter's shrink factor before the update
};

bool fusable(const torch::Tensor& p) {
  return is_plain_float32(p) && is_plain_float32(p.grad()) && p.grad().numel() == p.numel();
}

// The per-element sequence of LibTorch 1.13's Adam/AdamW, in one pass:
//   p *= decoupled_scale; g += l2 * p; m = m * b1 + (1 - b1) g; v = v * b2 + (1 - b2) g^2;
//   p += -step_size * m / (sqrt(v) / sqrt(bc2) + eps)
// This file is compiled with -O3 -fno-math-errno (CMakeLists.txt) so that the loop, square
// root included, is vectorised (a negative v cannot occur: errno has nothing to report).
void adam_update(const AdamStep& step, float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, int64_t n) {
  const AdamStep s = step;
  for (int64_t i = 0; i < n; ++i) {
    float param = p[i] * s.decoupled_scale;
    float grad = g[i] + s.l2_decay * param;
    float mean = m[i] * s.beta1 + s.one_minus_beta1 * grad;
    float square = v[i] * s.beta2 + s.one_minus_beta2 * (grad * grad);
    float denom = std::sqrt(square) / s.sqrt_bias_correction2 + s.eps;
    m[i] = mean;
    v[i] = square;
    p[i] = param + s.negative_step_size * (mean / denom);
  }
}

template <typename ParamState>
ParamState& state_of(const torch::Tensor& p,
                     ska::flat_hash_map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>& states) {
  auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto found = states.find(key);
  if (found == states.end()) {
    auto state = std::make_unique<ParamState>();
    state->step(0);
    state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    found = states.emplace(key, std::move(state)).first;
  }
  return static_cast<ParamState&>(*found->second);
}

// Runs the fused update on every parameter it can take and reports whether it took them all;
// the caller hands the whole step to LibTorch otherwise (before any parameter has moved).
template <typename ParamState, typename Options>
bool fused_step(std::vector<torch::optim::OptimizerParamGroup>& groups,
                ska::flat_hash_map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>& states,
                bool decoupled) {
  for (auto& group : groups) {
    auto& options = static_cast<Options&>(group.options());
    if (options.amsgrad()) return false;
    for (auto& p : group.params())
      if (p.grad().defined() && !fusable(p)) return false;
  }
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    auto& options = static_cast<Options&>(group.options());
    auto [beta1, beta2] = options.betas();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& state = state_of<ParamState>(p, states);
      state.step(state.step() + 1);
      double bias_correction1 = 1 - std::pow(beta1, state.step());
      double bias_correction2 = 1 - std::pow(beta2, state.step());
      AdamStep s{};
      s.beta1 = static_cast<float>(beta1);
      s.one_minus_beta1 = static_cast<float>(1 - beta1);
      s.beta2 = static_cast<float>(beta2);
      s.one_minus_beta2 = static_cast<float>(1 - beta2);
      s.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2));
      s.eps = static_cast<float>(options.eps());
      s.negative_step_size = static_cast<float>(-(options.lr() / bias_correction1));
      s.l2_decay = decoupled ? 0.0f : static_cast<float>(options.weight_decay());
      s.decoupled_scale = decoupled ? static_cast<float>(1 - options.lr() * options.weight_decay()) : 1.0f;
      torch::Tensor& m = state.exp_avg();
      torch::Tensor& v = state.exp_avg_sq();
      TORCH_CHECK(m.is_contiguous() && v.is_contiguous() && m.scalar_type() == torch::kFloat32 &&
                      v.scalar_type() == torch::kFloat32 && m.numel() == p.numel() && v.numel() == p.numel(),
                  "Adam state does not match its parameter (a checkpoint of another model?)");
      adam_update(s, p.data_ptr<float>(), p.grad().data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                  p.numel());
    }
  }
  return true;
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  if (closure) return torch::optim::Adam::step(std::move(closure));
  if (!fused_step<torch::optim::AdamParamState, torch::optim::AdamOptions>(param_groups_, state_, false))
    return torch::optim::Adam::step();
  return {};
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  if (closure) return torch::optim::AdamW::step(std::move(closure));
  if (!fused_step<torch::optim::AdamWParamState, torch::optim::AdamWOptions>(param_groups_, state_, true))
    return torch::optim::AdamW::step();
  return {};
}

}  // namespace j2v::engine
