#include "engine/stop_signal.h"

#include <atomic>
#include <signal.h>

#include <csignal>

namespace j2v::engine {

namespace {
std::atomic<int> g_received{0};
struct sigaction g_previous_int, g_previous_term;

// Written before the handler can run and read by it: fixed storage, no allocation.
constexpr int kMaxForwarded = 256;
std::atomic<int> g_forward_count{0};
int g_forward_pids[kMaxForwarded];
extern "C" void record_stop_signal(int signum) {
  g_received.store(signum);
  int n = g_forward_count.load();
  for (int i = 0; i < n; ++i) kill(g_forward_pids[i], signum);
}
}  // namespace

StopSignalScope::StopSignalScope(bool enabled) : enabled_(enabled) {
  g_received.store(0);
  if (!enabled_) return;
  struct sigaction action {};
  action.sa_handler = record_stop_signal;
  sigemptyset(&action.sa_mask);
  // One-shot: the handler reverts to the default after the first signal.
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &action, &g_previous_int);
  sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignalScope::~StopSignalScope() {
  if (!enabled_) return;
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

void forward_stop_signals_to(const std::vector<int>& pids) {
  g_forward_count.store(0);
  int n = 0;
  for (int pid : pids)
    if (n < kMaxForwarded) g_forward_pids[n++] = pid;
  g_forward_count.store(n);
}

int StopSignalScope::received() { return g_received.load(); }

const char* signal_name(int signum) {
  switch (signum) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
  }
}

}  // namespace j2v::engine
