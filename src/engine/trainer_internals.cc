#include "engine/trainer_internals.h"

#include <fmt/format.h>

#include <cmath>
#include <mutex>

namespace j2v::engine::detail {

int64_t& logging_batch_size() {
  thread_local int64_t rows = 1;
  return rows;
}

std::string archive_key(const std::string& prefix, const std::string& key) {
  std::string out = prefix;
  for (char c : key) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

torch::Tensor rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_rng_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

DeterministicScope::DeterministicScope(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  previous_ = at::globalContext().deterministicAlgorithms();
  at::globalContext().setDeterministicAlgorithms(true, false);
}

DeterministicScope::~DeterministicScope() {
  if (enabled_) at::globalContext().setDeterministicAlgorithms(previous_, false);
}

void check_loss(const torch::Tensor& loss, int64_t epoch, int64_t idx) {
  double value = loss.item<double>();
  if (!std::isfinite(value))
    throw std::runtime_error(fmt::format("loss is {} at epoch {}, batch {}: training diverged (lower optimizer.lr "
                                         "or set trainer.gradient_clip_val)",
                                         value, epoch, idx));
}
int64_t batches_to_run(const BatchLimit& limit, const DataLoader& loader, const char* key) {
  int64_t available = loader.num_batches();
  if (available < 0 && limit.is_fraction && limit.value < 1.0) {
    available = loader.estimated_batches();
    if (available < 0)
      throw std::invalid_argument(fmt::format("trainer.{} is a fraction ({}), but the stream's length is unknown: "
                                              "give a number of batches instead",
                                              key, limit.value));
  }
  return limit.apply(available);
}


}  // namespace j2v::engine::detail
