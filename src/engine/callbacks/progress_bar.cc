#include "engine/callbacks/progress_bar.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "engine/trainer.h"

namespace j2v::engine {

ProgressBar::ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1) {}

std::string ProgressBar::render(int64_t epoch, int64_t max_epochs, int64_t done, int64_t total, double seconds,
                                const std::map<std::string, double>& metrics, int width) {
  std::string bar;
  if (total > 0) {
    int filled = static_cast<int>(width * std::min<int64_t>(done, total) / total);
    bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  }
  std::string line = fmt::format("epoch {}/{} {} {}/{} {:.1f}s", epoch + 1, max_epochs, bar, done,
                                 total > 0 ? std::to_string(total) : "?", seconds);
  for (const auto& [k, v] : metrics) line += fmt::format(" {}={:.4g}", k, v);
  return line;
}

void ProgressBar::on_train_epoch_start(Trainer&, Module&) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void ProgressBar::on_train_batch_end(Trainer& trainer, Module&, const torch::Tensor&, Batch&, int64_t idx) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && idx + 1 != trainer.num_loop_batches()) return;
  last_draw_ = now;
  double seconds = std::chrono::duration<double>(now - start_).count();
  std::string line = render(trainer.current_epoch(), trainer.options().max_epochs(), idx + 1,
                            trainer.num_loop_batches(), seconds, trainer.progress_bar_metrics());
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

void ProgressBar::on_train_epoch_end(Trainer& trainer, Module&) {
  if (!enabled_) return;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::map<std::string, double> shown = trainer.progress_bar_metrics();
  for (const auto& [k, v] : trainer.callback_metrics())
    if (k.rfind("loss/", 0) == 0) shown[k] = v;
  std::string line = render(trainer.current_epoch() - 1, trainer.options().max_epochs(), trainer.num_loop_batches(),
                            trainer.num_loop_batches(), seconds, shown);
  std::fprintf(stderr, "\r\033[K%s\n", line.c_str());
}

}  // namespace j2v::engine
