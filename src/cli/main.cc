#include <malloc.h>

#include "cli/commands.h"

int main(int argc, char** argv) {
  // glibc would otherwise map and unmap activation buffers on every step (2.4x slower).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return j2v::cli::run_cli(argc, argv);
}
