#include "engine/profiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace j2v::engine {

void Profiler::record(const std::string& action, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& stat = stats_[action];
  ++stat.calls;
  stat.seconds += seconds;
}

std::string Profiler::report(double run_seconds) const {
  std::vector<std::pair<std::string, Stat>> rows(stats_.begin(), stats_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  std::string out = fmt::format("{:<40} {:>10} {:>14} {:>12} {:>8}\n", "action", "calls", "mean (ms)", "total (s)", "share");
  for (const auto& [action, stat] : rows)
    out += fmt::format("{:<40} {:>10} {:>14.4f} {:>12.4f} {:>7.2f}%\n", action, stat.calls,
                       1000.0 * stat.seconds / static_cast<double>(std::max<int64_t>(stat.calls, 1)), stat.seconds,
                       run_seconds > 0 ? 100.0 * stat.seconds / run_seconds : 0.0);
  out += fmt::format("{:<40} {:>10} {:>14} {:>12.4f} {:>7.2f}%\n", "total fit", 1, "", run_seconds, 100.0);
  return out;
}

}  // namespace j2v::engine
