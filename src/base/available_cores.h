#pragma once

namespace j2v {

// The number of cores this process may actually run on: the CPUs in its affinity mask,
// capped by a cgroup CPU quota (containers, Kubernetes limits, CI runners). Thread pools
// sized from std::thread::hardware_concurrency() instead count every core of the host,
// and OpenMP threads that outnumber the cores they get spin against each other: a
// training step measured 15x slower with two such jobs on two cores.
int available_cores();

}  // namespace j2v
