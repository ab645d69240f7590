#pragma once
// Where this process stands in a data-parallel run, and the processes it starts.
//
// Started by a user with trainer.devices N (and trainer.num_nodes M, NODE_RANK naming this
// machine), a process becomes local rank 0 of its machine and starts N - 1 more copies of its
// own program, with the same arguments, as local ranks 1..N-1 (Lightning's subprocess
// launcher). Started by an outside launcher that sets RANK, WORLD_SIZE and LOCAL_RANK
// (torchrun, SLURM's srun through those variables), it joins as that rank and starts nothing.
// The rendezvous is MASTER_ADDR:MASTER_PORT (torchrun's names); on one machine a free port
// is chosen when none is given.
//
// The starting process watches its copies: when one fails, it names the rank and how it ended
// on stderr, stops the others, and exits non-zero. SIGINT and SIGTERM it receives reach its
// copies too, and a copy whose starter dies is stopped by the kernel (PR_SET_PDEATHSIG).
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace j2v::engine {

struct RankLayout {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  int64_t node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  bool from_environment = false;  // RANK/WORLD_SIZE were set by whoever started this process
};

// The layout for devices x num_nodes: from RANK/WORLD_SIZE/LOCAL_RANK when set, else this
// process as local rank 0 of node NODE_RANK (default 0). Throws std::invalid_argument naming
// the variable or setting that is missing or inconsistent.
RankLayout rank_layout(int64_t devices, int64_t num_nodes);

class RankLauncher {
 public:
  // Starts local ranks 1..local_world_size-1 of `layout` (which must be local rank 0 and not
  // from the environment), each with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
  // NODE_RANK, MASTER_ADDR and MASTER_PORT set, and starts watching them.
  explicit RankLauncher(const RankLayout& layout);
  // Waits for every started rank to end; one that fails stops the run (see above).
  ~RankLauncher();
  RankLauncher(const RankLauncher&) = delete;
  RankLauncher& operator=(const RankLauncher&) = delete;

 private:
  void watch();
  [[noreturn]] void stop_run(size_t failed, int status);

  struct Child {
    pid_t pid;
    int64_t rank;
    bool ended = false;
  };
  std::vector<Child> children_;
  std::atomic<bool> finishing_{false};
  std::thread watcher_;
};

// A port free on this machine now, for a rendezvous that has none.
int free_local_port();

}  // namespace j2v::engine
