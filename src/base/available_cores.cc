#include "base/available_cores.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace j2v {
namespace {

int affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// cgroup v2 writes "max 100000" or "<quota> <period>" to cpu.max; v1 splits them over two
// files with -1 for no limit. A fractional quota rounds up: 1.5 cores still runs two threads.
int quota_cores() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period) {
    if (quota == "max" || period <= 0) return 0;
    try {
      return static_cast<int>(std::ceil(std::stod(quota) / period));
    } catch (...) {
      return 0;
    }
  }
  std::ifstream v1_quota("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  std::ifstream v1_period("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double q = -1;
  if (v1_quota >> q && v1_period >> period && q > 0 && period > 0)
    return static_cast<int>(std::ceil(q / period));
  return 0;
}

}  // namespace

int available_cores() {
  static const int cores = [] {
    int n = affinity_cores();
    int quota = quota_cores();
    if (quota > 0) n = std::min(n, quota);
    return std::max(1, n);
  }();
  return cores;
}

}  // namespace j2v
