#!/usr/bin/env bash
# Installs every build and run dependency of json2vec on Debian 12.
# Idempotent: packages already present and a DuckDB already unpacked are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-openmp libgloo-dev libdnnl-dev libmimalloc-dev
  libsimdjson-dev nlohmann-json3-dev libyaml-cpp-dev libfmt-dev libspdlog-dev
  libboost-dev libcpp-httplib-dev zlib1g-dev libzstd-dev libcurl4-openssl-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  python3 python3-sklearn python3-torch python3-numpy
  wrk
)
# The machine image may ship its own Node.js (whose package conflicts with Debian's npm):
# install Debian's only when no npm is on PATH.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# DuckDB (Parquet/CSV/JSON through its C API): Debian has no Arrow/Parquet library, so the
# shared library and its header come from npm, pinned by version and sha256.
DUCKDB_DIR=third_party/duckdb
DUCKDB_LIB_PKG="@duckdb/node-bindings-linux-x64@1.4.4-r.4"
DUCKDB_LIB_SHA=732fac4dc6b8f198870b9c4bb6ddf13544466daca00ad28ba2f1d80de5d7aa4b
DUCKDB_HDR_PKG="duckdb@1.4.4"
DUCKDB_HDR_SHA=5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed

if [ ! -f "$DUCKDB_DIR/lib/libduckdb.so" ] || [ ! -f "$DUCKDB_DIR/include/duckdb.h" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$DUCKDB_LIB_PKG" "$DUCKDB_HDR_PKG" >/dev/null)
  lib_tgz=$(ls "$tmp"/duckdb-node-bindings-linux-x64-*.tgz)
  hdr_tgz=$(ls "$tmp"/duckdb-1.4.4.tgz)
  echo "$DUCKDB_LIB_SHA  $lib_tgz" | sha256sum -c --quiet
  echo "$DUCKDB_HDR_SHA  $hdr_tgz" | sha256sum -c --quiet
  mkdir -p "$DUCKDB_DIR/lib" "$DUCKDB_DIR/include"
  tar -xzf "$lib_tgz" -C "$tmp" package/libduckdb.so
  cp "$tmp/package/libduckdb.so" "$DUCKDB_DIR/lib/"
  rm -rf "$tmp/package"
  tar -xzf "$hdr_tgz" -C "$tmp" package/src/duckdb/src/include/duckdb.h
  cp "$tmp/package/src/duckdb/src/include/duckdb.h" "$DUCKDB_DIR/include/"
fi
# An independent Parquet reader for the writer's interop tests, a local S3 server for the
# S3 tests, and protobufjs + a CRC32C for reading TensorBoard event files back (pinned by the
# lock file).
if [ ! -d tests/io/node_modules/hyparquet ] || [ ! -d tests/io/node_modules/s3rver ] ||
   [ ! -d tests/io/node_modules/protobufjs ] || [ ! -d tests/io/node_modules/@aws-crypto/crc32c ]; then
  npm ci --silent --no-audit --no-fund --prefix tests/io >/dev/null
fi
echo "setup: dependencies ready"
