#!/usr/bin/env bash
# Streaming at scale: trains one epoch over N synthetic flat records read as a stream and
# prints the peak RSS (it should not grow with N), then compares the rate at which a
# streamed epoch delivers batches from JSON Lines and from Parquet with `bench encode`.
#   bench/stream/run.sh                 # N = 1M and 10M (needs ~1 GB of disk per 10M)
#   SIZES="200000" bench/stream/run.sh  # a quick look
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/json2vec
WORK=${WORK:-/tmp/j2v_bench_stream}
mkdir -p "$WORK"

# N records in 10 files: y = x1 - 2 x2 + x3^2 + a per-label offset, c one of 1,000 labels.
generate() {
  local n=$1 dir=$2
  [ -f "$dir/.complete" ] && return
  rm -rf "$dir"; mkdir -p "$dir/train"
  awk -v n="$n" -v dir="$dir/train" 'BEGIN {
    srand(7)
    for (i = 0; i < n; i++) {
      f = sprintf("%s/part-%02d.jsonl", dir, int(i * 10 / n))
      x1 = rand() * 2 - 1; x2 = rand() * 2 - 1; x3 = rand() * 2 - 1; c = int(rand() * 1000)
      printf("{\"x1\":%.4f,\"x2\":%.4f,\"x3\":%.4f,\"c\":\"c%d\",\"y\":%.4f}\n", x1, x2, x3, c, x1 - 2 * x2 + x3 * x3 + (c % 7) / 7) > f
    }
  }'
  touch "$dir/.complete"
}

peak_rss() {  # runs a command, prints its figures, then its peak RSS in MiB
  local log=$WORK/time.log
  /usr/bin/time -f '%M %e' -o "$log" "$@"
  read -r kib seconds < "$log"
  echo "peak RSS $((kib / 1024)) MiB, ${seconds} s"
}

for n in ${SIZES:-1000000 10000000}; do
  dir=$WORK/n$n
  generate "$n" "$dir"
  echo "== training one epoch over $n streamed records"
  peak_rss $BIN fit --config bench/stream/flat.yaml --data.streaming.root="$dir" 2>&1 | tail -2
done

n=${THROUGHPUT_SIZE:-1000000}
dir=$WORK/n$n
generate "$n" "$dir"
if [ ! -f "$dir/parquet/.complete" ]; then
  mkdir -p "$dir/parquet/train"
  for f in "$dir"/train/*.jsonl; do
    $BIN convert --input "$f" --output "$dir/parquet/train/$(basename "$f" .jsonl).parquet" >/dev/null
  done
  touch "$dir/parquet/.complete"
fi
echo "== $n records: encoding alone (bench encode, JSON Lines in memory, 1 and 2 threads)"
for t in 1 2; do
  $BIN bench encode --config bench/stream/flat.yaml --input "$dir/train/part-00.jsonl" --data.num_workers=$t
done
echo "== $n records: a streamed epoch (read, shuffle, encode, batch), 2 workers"
$BIN bench stream --config bench/stream/flat.yaml --data.streaming.root="$dir" --data.num_workers=2
$BIN bench stream --config bench/stream/flat.yaml --data.streaming.root="$dir/parquet" \
  --data.streaming.suffix=parquet --data.num_workers=2
