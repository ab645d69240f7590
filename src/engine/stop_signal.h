#pragma once
// SIGINT / SIGTERM as a request to stop training gracefully: while a StopSignalScope is alive
// the first such signal is only recorded (the Trainer finishes its step and writes a
// resumable checkpoint); a second one gets the default action, so a stuck run still dies.
#include <vector>

namespace j2v::engine {

class StopSignalScope {
 public:
  explicit StopSignalScope(bool enabled);
  ~StopSignalScope();
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;

  // The signal received since the scope opened (SIGINT, SIGTERM), or 0.
  static int received();

 private:
  bool enabled_;
};

const char* signal_name(int signum);

// Processes that get the SIGINT or SIGTERM this one receives while a StopSignalScope is open
// (the ranks a data-parallel run started); an empty list stops forwarding.
void forward_stop_signals_to(const std::vector<int>& pids);

}  // namespace j2v::engine
