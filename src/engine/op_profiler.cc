#include "engine/op_profiler.h"

#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <vector>

namespace j2v::engine {

namespace {

std::string shapes_text(const std::vector<std::vector<int64_t>>& shapes) {
  std::string out;
  for (const auto& shape : shapes) {
    if (!out.empty()) out += ' ';
    out += '[' + fmt::format("{}", fmt::join(shape, ",")) + ']';
  }
  return out;
}

// Multiply-adds of a matrix product from its operands' shapes (mm: a, b; addmm and the
// in-place addmm_ that accumulates a weight gradient: c, a, b).
double gemm_multiply_adds(const std::string& name, const std::vector<std::vector<int64_t>>& shapes) {
  size_t first = name == "aten::mm" ? 0 : name == "aten::addmm" || name == "aten::addmm_" ? 1 : shapes.size();
  if (first + 1 >= shapes.size() || shapes[first].size() != 2 || shapes[first + 1].size() != 2) return 0;
  return static_cast<double>(shapes[first][0]) * static_cast<double>(shapes[first][1]) *
         static_cast<double>(shapes[first + 1][1]);
}

}  // namespace

void OpProfiler::start() {
  if (running_) return;
  torch::autograd::profiler::enableProfilerLegacy(
      torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/true));
  running_ = true;
}

void OpProfiler::stop() {
  if (!running_) return;
  running_ = false;
  auto threads = torch::autograd::profiler::disableProfilerLegacy();
  struct Open {
    std::string key;
    double start_us, children_us;
  };
  for (auto& events : threads) {
    std::vector<Open> stack;  // ranges nest: a parent's self time excludes its children
    for (auto& event : events) {
      if (event.kind() == torch::autograd::profiler::EventKind::PushRange) {
        auto shapes = event.shapes();
        std::string name = event.name();
        gemm_multiply_adds_ += gemm_multiply_adds(name, shapes);
        stack.push_back({name + ' ' + shapes_text(shapes), event.cpuUs(), 0});
      } else if (event.kind() == torch::autograd::profiler::EventKind::PopRange && !stack.empty()) {
        Open open = stack.back();
        stack.pop_back();
        double elapsed = event.cpuUs() - open.start_us;
        auto& row = rows_[open.key];
        ++row.calls;
        row.self_us += elapsed - open.children_us;
        if (!stack.empty()) stack.back().children_us += elapsed;
      }
    }
  }
}

std::string OpProfiler::report(int64_t steps) const {
  std::vector<std::pair<std::string, Row>> rows(rows_.begin(), rows_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_us > b.second.self_us; });
  double total = 0;
  for (const auto& row : rows) total += row.second.self_us;
  std::string out = fmt::format("{:>12} {:>8} {:>10}  {}\n", "self (ms)", "share", "calls", "operator [input shapes]");
  for (size_t i = 0; i < rows.size() && i < 60; ++i)
    out += fmt::format("{:>12.1f} {:>7.1f}% {:>10}  {}\n", rows[i].second.self_us / 1000,
                       total > 0 ? 100 * rows[i].second.self_us / total : 0.0, rows[i].second.calls, rows[i].first);
  out += fmt::format("operators' self time {:.1f} ms over {} training steps (the profiler's own cost included)\n",
                     total / 1000, steps);
  if (steps > 0)
    out += fmt::format("matrix multiplications: {:.4g} multiply-adds per training step\n",
                       gemm_multiply_adds_ / static_cast<double>(steps));
  return out;
}

}  // namespace j2v::engine
