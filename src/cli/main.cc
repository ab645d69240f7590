#include <malloc.h>

#include <cstdlib>

#ifdef J2V_MIMALLOC
#include <mimalloc.h>
#endif

#include "cli/commands.h"

namespace {

void tune_allocator() {
#ifdef J2V_MIMALLOC
  // mimalloc returns freed pages to the system after 25 ms by default, and training frees
  // and reallocates its activations every step: one nested epoch ran 4-5x slower (7-12 M page
  // faults). Keep them for 100 s instead; a user's own MIMALLOC_* setting wins.
  if (!std::getenv("MIMALLOC_DECOMMIT_DELAY") && !std::getenv("MIMALLOC_RESET_DELAY"))
    mi_option_set(mi_option_decommit_delay, 100000);
#else
  // glibc would otherwise map and unmap activation buffers on every step (2.4x slower).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator();
  return j2v::cli::run_cli(argc, argv);
}
