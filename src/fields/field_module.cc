#include "fields/field_module.h"

#include "nn/gelu.h"

namespace j2v {

FieldModuleImpl::FieldModuleImpl(const Field& field, const FieldModuleOptions& options)
    : field_(field) {}

void FieldModuleImpl::build_head(int64_t d_model) {
  head_norm_ = register_module("head_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  head_hidden_ = register_module("head_hidden", torch::nn::Linear(d_model, d_model));
  head_out_ = register_module("head_out", torch::nn::Linear(d_model, kNumCellStates + content_width()));
}

torch::Tensor FieldModuleImpl::head(const torch::Tensor& decoded) {
  return head_out_(nn::gelu(head_hidden_(head_norm_(decoded))));
}

}  // namespace j2v
