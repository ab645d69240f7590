// The `json2vec` command: sets OpenMP's wait policy, then runs the program (json2vec-cli,
// beside this file). libgomp reads its environment when it is loaded, before any main() of a
// program linked against it runs, so the setting has to come from a process that is not.
//
// Why: an idle OpenMP thread spins for GOMP_SPINCOUNT iterations (300,000 by default) before
// it sleeps. Alone on a machine that costs nothing; beside a second json2vec (a server next to
// a training job, two runs of a sweep) the spinning threads take the cores the other process's
// threads are waiting for. Measured on 2 cores, 20 epochs of the bundled example: two jobs
// together took 75 s each against 7.8 s alone; with a spin count of 1,000, 12.3 s each against
// 6.4 s alone. OMP_WAIT_POLICY=passive (never spin) made the job alone slower (9.1 s).
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  (void)argc;
  // The user's own OpenMP settings win.
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "1000", 0);
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    std::fprintf(stderr, "json2vec: cannot find its own location (/proc/self/exe): %s\n", std::strerror(errno));
    return 127;
  }
  self[n] = '\0';
  std::string program(self);
  program = program.substr(0, program.rfind('/') + 1) + "json2vec-cli";
  execv(program.c_str(), argv);
  std::fprintf(stderr, "json2vec: cannot run %s: %s\n", program.c_str(), std::strerror(errno));
  return 127;
}
