#!/usr/bin/env bash
# Configures and builds json2vec (Release, Ninja, ccache) into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086  # CMAKE_ARGS is a list of -D options
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
fi
# Two jobs: each LibTorch translation unit needs about 1 GiB and this fits 2-core machines.
cmake --build "$BUILD_DIR" -j "${JOBS:-2}"
