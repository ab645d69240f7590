#pragma once
// Adam and AdamW whose step runs one pass over each parameter's memory instead of LibTorch's
// eight tensor operations per parameter. A json2vec model has about 70 small parameter
// tensors: LibTorch's per-operator cost made its step about a millisecond, a twentieth of a
// training step, spent on one thread while the other cores waited for it.
//
// They are torch::optim::Adam and AdamW in every other respect (options, parameter groups,
// per-parameter state, serialisation): a checkpoint written by one loads into the other.
// Parameters that are not contiguous float32 on the CPU, and amsgrad, take LibTorch's path.
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace j2v::engine {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace j2v::engine
