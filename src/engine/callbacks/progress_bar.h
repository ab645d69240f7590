#pragma once
// A one-line progress bar on stderr, redrawn in place. Silent when stderr is not a
// terminal, so logs and CI output stay clean.
#include <chrono>

#include "engine/callback.h"

namespace j2v::engine {

class ProgressBar : public Callback {
 public:
  ProgressBar();
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  std::string state_key() const override { return "ProgressBar"; }
  void on_train_epoch_start(Trainer&, Module&) override;
  void on_train_batch_end(Trainer&, Module&, const torch::Tensor&, Batch&, int64_t) override;
  void on_train_epoch_end(Trainer&, Module&) override;
  // Renders one line; public so it can be tested without a terminal.
  static std::string render(int64_t epoch, int64_t max_epochs, int64_t done, int64_t total, double seconds,
                            const std::map<std::string, double>& metrics, int width = 24);

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace j2v::engine
