#include "engine/distributed/launcher.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "engine/stop_signal.h"

extern char** environ;

namespace j2v::engine {

namespace {

std::optional<int64_t> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long long value = std::strtoll(v, &end, 10);
  if (*end != '\0' || value < 0)
    throw std::invalid_argument(fmt::format("the environment variable {} must be a whole number >= 0, got '{}'", name, v));
  return value;
}

std::string env_string(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string describe_end(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return fmt::format("was killed by SIG{}", name ? name : std::to_string(sig).c_str());
  }
  return fmt::format("exited with status {}", WEXITSTATUS(status));
}

}  // namespace

int free_local_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open a socket to find a free port: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error(fmt::format("cannot find a free port for the rendezvous: {}", std::strerror(err)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

RankLayout rank_layout(int64_t devices, int64_t num_nodes) {
  if (devices < 1 || num_nodes < 1) throw std::invalid_argument("trainer.devices and trainer.num_nodes must be >= 1");
  RankLayout l;
  auto rank = env_int("RANK"), world = env_int("WORLD_SIZE");
  if (rank || world) {
    if (!rank || !world)
      throw std::invalid_argument("RANK and WORLD_SIZE must be set together (an outside launcher sets both)");
    l.from_environment = true;
    l.rank = *rank;
    l.world_size = *world;
    l.local_world_size = env_int("LOCAL_WORLD_SIZE").value_or(devices);
    l.local_rank = env_int("LOCAL_RANK").value_or(l.rank % l.local_world_size);
    l.node_rank = env_int("GROUP_RANK").value_or(env_int("NODE_RANK").value_or(l.rank / l.local_world_size));
    if (l.world_size != devices * num_nodes)
      throw std::invalid_argument(fmt::format(
          "WORLD_SIZE is {}, but trainer.devices x trainer.num_nodes is {} x {} = {}: set devices to the processes per "
          "machine and num_nodes to the machines",
          l.world_size, devices, num_nodes, devices * num_nodes));
    if (l.rank >= l.world_size)
      throw std::invalid_argument(fmt::format("RANK {} is not below WORLD_SIZE {}", l.rank, l.world_size));
    l.master_addr = env_string("MASTER_ADDR", "127.0.0.1");
    auto port = env_int("MASTER_PORT");
    if (!port) throw std::invalid_argument("RANK and WORLD_SIZE are set, but MASTER_PORT is not: set the rendezvous port");
    l.master_port = static_cast<int>(*port);
    return l;
  }
  l.local_world_size = devices;
  l.world_size = devices * num_nodes;
  l.node_rank = env_int("NODE_RANK").value_or(0);
  if (l.node_rank >= num_nodes)
    throw std::invalid_argument(
        fmt::format("NODE_RANK {} is not below trainer.num_nodes {}", l.node_rank, num_nodes));
  l.rank = l.node_rank * devices;
  auto port = env_int("MASTER_PORT");
  if (num_nodes > 1 && (!std::getenv("MASTER_ADDR") || !port))
    throw std::invalid_argument(
        "trainer.num_nodes > 1: set MASTER_ADDR (the address of the machine with NODE_RANK 0) and MASTER_PORT on every "
        "machine");
  l.master_addr = env_string("MASTER_ADDR", "127.0.0.1");
  l.master_port = port ? static_cast<int>(*port) : free_local_port();
  return l;
}

RankLauncher::RankLauncher(const RankLayout& layout) {
  if (layout.from_environment || layout.local_rank != 0)
    throw std::logic_error("only local rank 0 of a run it started itself launches ranks");
  // The same program with the same arguments.
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) throw std::runtime_error(fmt::format("cannot find this program (/proc/self/exe): {}", std::strerror(errno)));
  exe[n] = '\0';
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(cmdline)), {});
  std::vector<std::string> args;
  for (size_t start = 0; start < raw.size();) {
    size_t end = raw.find('\0', start);
    if (end == std::string::npos) end = raw.size();
    args.push_back(raw.substr(start, end - start));
    start = end + 1;
  }
  std::vector<int> pids;
  for (int64_t local = 1; local < layout.local_world_size; ++local) {
    int64_t rank = layout.node_rank * layout.local_world_size + local;
    // Everything the child needs is built before fork: between fork and exec only
    // async-signal-safe calls are allowed in a threaded program.
    std::vector<std::string> env;
    const std::vector<std::string> ours = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK",
                                           "MASTER_ADDR", "MASTER_PORT"};
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      std::string key = kv.substr(0, kv.find('='));
      if (std::find(ours.begin(), ours.end(), key) == ours.end()) env.push_back(kv);
    }
    env.push_back(fmt::format("RANK={}", rank));
    env.push_back(fmt::format("LOCAL_RANK={}", local));
    env.push_back(fmt::format("WORLD_SIZE={}", layout.world_size));
    env.push_back(fmt::format("LOCAL_WORLD_SIZE={}", layout.local_world_size));
    env.push_back(fmt::format("NODE_RANK={}", layout.node_rank));
    env.push_back(fmt::format("MASTER_ADDR={}", layout.master_addr));
    env.push_back(fmt::format("MASTER_PORT={}", layout.master_port));
    std::vector<char*> envp, argv;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t parent = getpid();
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(fmt::format("cannot start rank {}: fork: {}", rank, std::strerror(errno)));
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);  // the starter is already gone
      execve(exe, argv.data(), envp.data());
      _exit(127);
    }
    children_.push_back({pid, rank});
    pids.push_back(pid);
  }
  forward_stop_signals_to(pids);
  watcher_ = std::thread([this] { watch(); });
}

RankLauncher::~RankLauncher() {
  finishing_ = true;
  if (watcher_.joinable()) watcher_.join();
  forward_stop_signals_to({});
}

void RankLauncher::watch() {
  for (;;) {
    bool all_ended = true;
    for (size_t i = 0; i < children_.size(); ++i) {
      auto& child = children_[i];
      if (child.ended) continue;
      int status = 0;
      pid_t done = waitpid(child.pid, &status, WNOHANG);
      if (done == child.pid) {
        child.ended = true;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) stop_run(i, status);
      } else {
        all_ended = false;
      }
    }
    if (all_ended && finishing_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void RankLauncher::stop_run(size_t failed, int status) {
  const auto& child = children_[failed];
  std::fprintf(stderr, "json2vec: rank %lld (pid %d) %s; stopping the other ranks\n",
               static_cast<long long>(child.rank), static_cast<int>(child.pid), describe_end(status).c_str());
  for (const auto& other : children_)
    if (!other.ended) kill(other.pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (auto& other : children_) {
    while (!other.ended && std::chrono::steady_clock::now() < deadline) {
      int s = 0;
      if (waitpid(other.pid, &s, WNOHANG) == other.pid) other.ended = true;
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!other.ended) kill(other.pid, SIGKILL);
  }
  std::fflush(nullptr);
  std::_Exit(1);
}

}  // namespace j2v::engine
