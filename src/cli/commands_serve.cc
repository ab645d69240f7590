#include "cli/commands_serve.h"

#include "cli/commands_internal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/config.h"
#include "serve/deployment.h"

namespace j2v::cli {

using serve::Deployment;
using serve::DeploymentOptions;

namespace {

// Signals reach the watcher thread through a pipe: a handler may run on any thread and may
// only do async-signal-safe things, and write() is one.
int g_signal_pipe = -1;

void on_signal(int sig) {
  if (g_signal_pipe < 0) return;
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n = ::write(g_signal_pipe, &byte, 1);
  errno = saved;
}

// Installs SIGTERM/SIGINT handlers for its lifetime; signal() returns once one arrives,
// or once close() is called.
class SignalWatch {
 public:
  SignalWatch() {
    if (::pipe2(fds_, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("cannot create a pipe for signals: ") + std::strerror(errno));
    g_signal_pipe = fds_[1];
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, &old_term_);
    sigaction(SIGINT, &action, &old_int_);
  }
  ~SignalWatch() {
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
    g_signal_pipe = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  // Blocks; returns the signal number, or 0 after close().
  int wait() {
    for (;;) {
      unsigned char byte = 0;
      ssize_t n = ::read(fds_[0], &byte, 1);
      if (n == 1) return byte;
      if (n < 0 && errno == EINTR) continue;
      return 0;
    }
  }
  void close() { on_signal(0); }

 private:
  int fds_[2] = {-1, -1};
  struct sigaction old_term_ {}, old_int_ {};
};

}  // namespace

std::string serve_help() {
  DeploymentOptions defaults;
  std::string out = R"(usage: json2vec serve --ckpt_path FILE [--port 8000 --host 127.0.0.1 ...]

Serves a checkpoint over HTTP/1.1: POST /predict (a record or a list of records), GET /health,
GET /metrics (Prometheus), GET /schema. Prints {"listening": "HOST:PORT"} once ready;
SIGTERM or SIGINT stops accepting, answers the requests already received, and exits 0.

Every option can also be set by its environment variable; a flag wins over the variable.

)";
  auto j = defaults.to_json();
  for (const auto& key : DeploymentOptions::keys())
    out += fmt::format("  --{:<26} {:<34} default {}\n", key, DeploymentOptions::env_name(key), j[key].dump());
  return out;
}

int run_serve(const std::optional<std::string>& ckpt_path, const std::vector<std::string>& overrides,
              const std::vector<std::string>& schema_overrides) {
  DeploymentOptions options = DeploymentOptions::from_env();
  if (ckpt_path) options.ckpt_path(*ckpt_path);
  for (const auto& kv : overrides) {
    auto eq = kv.find('=');
    options.set(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
  }
  if (options.ckpt_path().empty())
    throw ConfigError("serve needs a checkpoint: pass --ckpt_path FILE (or set JSON2VEC_CKPT_PATH)");
  options.validate();

  // With schema overrides, the model is loaded and changed before the server starts.
  std::optional<Model> overridden;
  if (!schema_overrides.empty()) {
    overridden = Model::load(options.ckpt_path());
    apply_schema_overrides(*overridden, schema_overrides);
  }
  auto owned = overridden ? std::make_unique<Deployment>(*overridden, options) : std::make_unique<Deployment>(options);
  Deployment& deployment = *owned;
  SignalWatch signals;
  std::thread watcher([&] {
    int sig = signals.wait();
    if (sig == 0) return;
    std::cerr << fmt::format("json2vec serve: {}; finishing the requests already received", strsignal(sig))
              << std::endl;
    deployment.stop();
  });
  try {
    deployment.start();
  } catch (...) {
    signals.close();
    watcher.join();
    throw;
  }
  if (deployment.ready())  // not when a signal came while the model was loading
    std::cout << nlohmann::json{{"listening", fmt::format("{}:{}", deployment.host(), deployment.port())}}.dump()
              << std::endl;
  deployment.wait();
  signals.close();
  watcher.join();
  std::cerr << "json2vec serve: stopped" << std::endl;
  return 0;
}

}  // namespace j2v::cli
