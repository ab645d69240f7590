#!/usr/bin/env bash
# Install.FindPackageConsumerTrainsAndPredicts: installs the build into a fresh prefix, builds
# examples/installed_consumer against it with find_package(json2vec), trains and predicts on
# examples/transactions, and builds the same program again from pkg-config's flags alone.
#   tests/install/install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail

src=$(cd "${1:?usage: install_test.sh SOURCE_DIR BUILD_DIR}" && pwd)
build=$(cd "${2:?usage: install_test.sh SOURCE_DIR BUILD_DIR}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/json2vec_install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log" >&2; fail "cmake --install"; }

config=$(find "$prefix" -path '*/cmake/json2vec/json2vecConfig.cmake' | head -n 1)
pc=$(find "$prefix" -path '*/pkgconfig/json2vec.pc' | head -n 1)
[[ -n "$config" ]] || fail "no json2vecConfig.cmake under $prefix"
[[ -n "$pc" ]] || fail "no json2vec.pc under $prefix"
libdir=$(dirname "$(dirname "$pc")")
for f in include/json2vec/json2vec.h include/json2vec/engine.h include/json2vec/cli.h \
  include/json2vec/engine/trainer.h include/json2vec/data/table_data_module.h \
  include/json2vec/model/model.h include/json2vec/duckdb.h bin/json2vec bin/json2vec-cli; do
  [[ -f "$prefix/$f" ]] || fail "not installed: $f"
done
for layer in base schema io nn fields engine data model serve cli; do
  [[ -f "$libdir/libjson2vec_$layer.a" ]] || fail "not installed: $libdir/libjson2vec_$layer.a"
done
[[ -f "$libdir/libduckdb.so" ]] || fail "not installed: $libdir/libduckdb.so"
[[ -f "$(dirname "$config")/json2vecConfigVersion.cmake" ]] || fail "no json2vecConfigVersion.cmake"
# Nothing of the source or build tree leaks into the package.
if grep -n -e "$src/" -e "$build/" "$(dirname "$config")"/*.cmake "$pc"; then
  fail "the installed package names the source or build tree"
fi

step "installed command line"
"$prefix/bin/json2vec" --help >"$tmp/help.txt" || fail "$prefix/bin/json2vec --help"
[[ -s "$tmp/help.txt" ]] || fail "json2vec --help printed nothing"

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # The prefix moves every run: paths under it are hashed relative to it, so reruns hit.
  export CCACHE_BASEDIR=$tmp
fi

step "configure and build examples/installed_consumer with find_package(json2vec)"
cmake -S "$src/examples/installed_consumer" -B "$tmp/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log" >&2; fail "configuring the consumer"; }
start=$(date +%s)
cmake --build "$tmp/consumer" || fail "building the consumer"
echo "consumer built in $(($(date +%s) - start)) s"
consumer=$tmp/consumer/transactions_consumer
# It runs on the installed libduckdb.so, not the one in the source tree.
ldd "$consumer" >"$tmp/ldd.txt" || fail "ldd $consumer"
grep -q "$libdir/libduckdb.so" "$tmp/ldd.txt" || { cat "$tmp/ldd.txt" >&2; fail "consumer does not load $libdir/libduckdb.so"; }

step "train, test and predict on examples/transactions"
start=$(date +%s)
"$consumer" "$src/examples/transactions" >"$tmp/out.json" || { cat "$tmp/out.json" >&2; fail "the consumer exited non-zero"; }
echo "trained and predicted in $(($(date +%s) - start)) s"
cat "$tmp/out.json"
line=$(tail -n 1 "$tmp/out.json")
[[ "$line" =~ \"predictions\":20[,}] ]] || fail "expected 20 predictions in: $line"
[[ "$line" =~ \"accuracy\":(0\.[0-9]+|1\.0) ]] || fail "no accuracy in: $line"
[[ "$line" =~ \"auc\":(0\.[0-9]+|1\.0) ]] || fail "no auc in: $line"
[[ "$line" =~ \"fraud\":\"(yes|no)\" ]] || fail "the first prediction is not yes/no: $line"

step "pkg-config --cflags --libs json2vec"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --cflags --libs json2vec || fail "pkg-config --cflags --libs json2vec"
read -r -a cflags <<<"$(pkg-config --cflags json2vec)"
read -r -a libs <<<"$(pkg-config --libs json2vec)"

step "build the consumer from pkg-config's flags alone"
start=$(date +%s)
compile=("${CXX:-c++}")
if command -v ccache >/dev/null; then
  compile=(ccache "${compile[@]}")
fi
(cd "$tmp" && "${compile[@]}" "${cflags[@]}" -c "$src/examples/installed_consumer/main.cc" -o main.o) ||
  fail "compiling with pkg-config --cflags json2vec"
"${CXX:-c++}" "$tmp/main.o" "${libs[@]}" -o "$tmp/consumer_pc" || fail "linking with pkg-config --libs json2vec"
echo "built in $(($(date +%s) - start)) s"
# Usage (exit 2) proves it starts: every library found, static initialisers run.
set +e
"$tmp/consumer_pc" >/dev/null 2>"$tmp/usage.txt"
rc=$?
set -e
[[ $rc -eq 2 ]] || { cat "$tmp/usage.txt" >&2; fail "the pkg-config build exited $rc, not 2 (usage)"; }
grep -q "usage:" "$tmp/usage.txt" || fail "the pkg-config build printed no usage"

echo "PASS"
