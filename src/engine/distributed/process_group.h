#pragma once
// The processes of one data-parallel run, as PyTorch's c10d sees them: a TCPStore for the
// rendezvous (hosted by rank 0 at MASTER_ADDR:MASTER_PORT) and a Gloo process group for the
// collectives. Every collective names the rank that failed and how long it waited when a peer
// stops answering, instead of hanging or reporting a socket error alone.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/distributed/reduction.h"

namespace j2v::engine {

struct ProcessGroupOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::seconds timeout{1800};
  // The address this rank's Gloo transport binds to: empty for the loopback address when
  // every rank is on this machine, else the host's default interface (GLOO_SOCKET_IFNAME
  // names an interface instead, as in PyTorch).
  std::string bind_addr;
  bool single_machine = true;
};

class ProcessGroup {
 public:
  // Joins the group: blocks until every rank has arrived or the timeout passes.
  explicit ProcessGroup(const ProcessGroupOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const { return options_.rank; }
  int64_t world_size() const { return options_.world_size; }

  // In place, on contiguous CPU tensors; `what` names the collective in errors.
  void all_reduce(std::vector<torch::Tensor>& tensors, Reduction op, const char* what);
  void broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const char* what);
  std::vector<double> all_reduce(const std::vector<double>& values, Reduction op, const char* what);
  // Every rank's bytes, in rank order.
  std::vector<std::string> all_gather(const std::string& bytes, const char* what);

 private:
  struct Impl;
  [[noreturn]] void fail(const char* what, const std::exception& e) const;
  ProcessGroupOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace j2v::engine
