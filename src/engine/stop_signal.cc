#include "engine/stop_signal.h"

#include <atomic>
#include <csignal>

namespace j2v::engine {

namespace {
std::atomic<int> g_received{0};
struct sigaction g_previous_int, g_previous_term;

extern "C" void record_stop_signal(int signum) { g_received.store(signum); }
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

int StopSignalScope::received() { return g_received.load(); }

const char* signal_name(int signum) {
  switch (signum) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
  }
}

}  // namespace j2v::engine
