#pragma once
// The "ops" profiler (after Lightning's PyTorchProfiler): LibTorch's own operator profiler
// over the training epochs, reported as self time per operator and input shapes, with the
// matrix multiplications' multiply-adds per training step: what a step spends in GEMMs
// against what it spends around them, and the step's distance from the machine's GEMM rate.
// Records the operators run on the thread that drives the loop (autograd's CPU backward
// included); thread replicas' own threads are not seen.
#include <cstdint>
#include <map>
#include <string>

namespace j2v::engine {

class OpProfiler {
 public:
  // Starts recording on the calling thread; stop() ends it and adds what was recorded.
  void start();
  void stop();
  bool running() const { return running_; }
  // The slowest operators first, with calls, self time and share; GEMM multiply-adds per step.
  std::string report(int64_t steps) const;

 private:
  struct Row {
    int64_t calls = 0;
    double self_us = 0;
  };
  bool running_ = false;
  std::map<std::string, Row> rows_;  // key: operator and its input shapes
  double gemm_multiply_adds_ = 0;
};

}  // namespace j2v::engine
