#!/usr/bin/env bash
# Sets up, builds and runs every test (CTest over GoogleTest).
#   scripts/test.sh               # Release build in build/
#   scripts/test.sh --sanitize    # the same tests built with ASan + UBSan, in build-sanitize/
# Other arguments go to ctest (-R NAME, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "--sanitize" ]; then
  shift
  export BUILD_DIR=${BUILD_DIR:-build-sanitize}
  # clang builds this tree about three times faster than g++ and has the same sanitizers.
  export CXX=${CXX:-clang++}
  export CMAKE_ARGS="-DJSON2VEC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"
  # LibTorch's allocations at exit are not ours; detect_leaks stays off for the same reason.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
