#!/usr/bin/env bash
# Fuzzes what users and clients control: records (the encoder), request bodies (the serve
# request reader), configs and checkpoints. Builds the libFuzzer harnesses of fuzz/ with
# clang, AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/, then runs each
# from its seed corpus (fuzz/corpus/NAME/) for SECONDS. A crash, sanitizer report, leak,
# timeout or out-of-memory stops the run non-zero and leaves the input in
# build-fuzz/findings/NAME-*; reproduce with build-fuzz/fuzz/fuzz_NAME FILE.
#   scripts/fuzz.sh                 # every harness, 30 s each (what CI runs)
#   scripts/fuzz.sh 600 config      # one harness for ten minutes
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SECONDS_EACH=${1:-30}
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(record_encoder request_reader config checkpoint)
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJSON2VEC_FUZZ=ON \
    -DJSON2VEC_BUILD_TESTS=OFF >/dev/null
fi
targets=()
for name in "${NAMES[@]}"; do targets+=("fuzz_$name"); done
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target "${targets[@]}"
mkdir -p "$BUILD_DIR/findings"
# LibTorch's own allocations at exit are not ours to fix; a leak in our code still shows
# while the process runs (RSS limit) and in the sanitizer test build.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for name in "${NAMES[@]}"; do
  scratch=$(mktemp -d)
  echo "fuzz: $name for ${SECONDS_EACH}s"
  log="$BUILD_DIR/findings/$name.log"
  status=0
  "$BUILD_DIR/fuzz/fuzz_$name" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$BUILD_DIR/findings/$name-" "$scratch" "fuzz/corpus/$name" > "$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|SUMMARY)" "$log" || true
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    grep -E "^(==[0-9]+==|    #[0-9]|terminate|  what|SUMMARY)" "$log" | head -40 >&2 || true
    echo "fuzz: $name found a problem (exit $status); the input is in $BUILD_DIR/findings/, the log in $log" >&2
    exit 1
  fi
done
echo "fuzz: no findings"
