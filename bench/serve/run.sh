#!/usr/bin/env bash
# Online-serving benchmark: `json2vec serve` over loopback (127.0.0.1 only).
#
# Usage: bench/serve/run.sh [CHECKPOINT]
#
# Without a checkpoint, trains the diamonds model of bench/accuracy/diamonds.yaml (10
# fields, d_model 64, 2 layers: the defaults) for $EPOCHS epochs on ../shared/datasets.
# Then, each against a fresh server:
#   1. single-record latency: one keep-alive connection, $LATENCY_N sequential requests,
#      the server pinned to one core (taskset) and the client to the other;
#   2. the answers against `json2vec predict` on the same records;
#   3. throughput: wrk, 64 connections, $DURATION s, one record per request, at several
#      max_batch_size values and worker counts, then lists of 16 records per request;
#   4. a load test: wrk with a mix of valid and invalid requests (bounded by time and by
#      request count), zero 5xx required, resident memory before and after.
#
# Environment: JSON2VEC (binary), J2V_DATASETS, EPOCHS (2), DURATION (10), LATENCY_N (5000),
# LOAD_REQUESTS (1000000: the load test's requests, in two rounds), LOAD_SECONDS (240: each
# round's time bound), PORT (18431), J2V_KEEP=1 keeps the work directory. Needs python3 and wrk (scripts/setup.sh).
# Prints one line per measurement and a summary table; exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
JSON2VEC="${JSON2VEC:-$root/build/json2vec}"
datasets="${J2V_DATASETS:-$root/../shared/datasets}"
EPOCHS="${EPOCHS:-2}"
DURATION="${DURATION:-10}"
LATENCY_N="${LATENCY_N:-5000}"
PORT="${PORT:-18431}"
LOAD_REQUESTS="${LOAD_REQUESTS:-1000000}"
LOAD_SECONDS="${LOAD_SECONDS:-240}"
cores=$(nproc)

command -v wrk >/dev/null || { echo "bench/serve: wrk not found (apt-get install wrk, or scripts/setup.sh)" >&2; exit 1; }
[[ -x "$JSON2VEC" ]] || { echo "bench/serve: $JSON2VEC not found: build first (ninja -C build)" >&2; exit 1; }

work="$(mktemp -d /tmp/j2v-serve-bench.XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  if [[ "${J2V_KEEP:-0}" == 1 ]]; then echo "bench/serve: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { echo "bench/serve: $*" >&2; }

# ---- the model and the records ------------------------------------------------------------
if [[ $# -ge 1 ]]; then
  ckpt="$1"
elif [[ -f "$datasets/diamonds.jsonl" ]]; then
  log "training diamonds ($EPOCHS epochs) ..."
  "$JSON2VEC" fit --config "$root/bench/accuracy/diamonds.yaml" --data.train="$datasets/diamonds.jsonl" \
    --trainer.max_epochs="$EPOCHS" --trainer.default_root_dir="$work/runs" --trainer.enable_progress_bar=false \
    > "$work/fit.log" 2>&1 || { cat "$work/fit.log" >&2; exit 1; }
  ckpt="$work/runs/version_0/checkpoints/last.ckpt"
else
  echo "bench/serve: no checkpoint given and $datasets/diamonds.jsonl not found (set J2V_DATASETS)" >&2
  exit 1
fi
source_records="$datasets/diamonds.jsonl"
[[ -f "$source_records" ]] || { echo "bench/serve: $source_records not found (set J2V_DATASETS)" >&2; exit 1; }
# The model's inputs: the target (price) left out, as a client would send them.
python3 - "$source_records" "$work/records.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for i, line in enumerate(src):
        if i >= 4096:
            break
        r = json.loads(line)
        r.pop("price", None)
        out.write(json.dumps(r, separators=(",", ":")) + "\n")
EOF
head -500 "$work/records.jsonl" > "$work/records500.jsonl"

# ---- helpers ------------------------------------------------------------------------------
start_server() {  # start_server [taskset-cpus|-] ARGS...: waits for the ready line
  local cpus="$1"; shift
  local cmd=("$JSON2VEC" serve --ckpt_path "$ckpt" --host 127.0.0.1 --port "$PORT" "$@")
  [[ "$cpus" != - ]] && cmd=(taskset -c "$cpus" "${cmd[@]}")
  "${cmd[@]}" > "$work/serve.out" 2> "$work/serve.err" &
  server_pid=$!
  for _ in $(seq 600); do
    grep -q listening "$work/serve.out" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench/serve: the server did not become ready" >&2; exit 1
}
stop_server() {  # SIGTERM; the server must drain and exit 0
  kill -TERM "$server_pid"
  local code=0
  wait "$server_pid" || code=$?
  server_pid=""
  [[ $code == 0 ]] || { echo "bench/serve: serve exited $code after SIGTERM" >&2; cat "$work/serve.err" >&2; exit 1; }
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }  # the server's user + system time
ticks_per_s=$(getconf CLK_TCK)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }
load_now() { cut -d' ' -f1 /proc/loadavg; }

echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at start $(load_now)"
echo "model: $ckpt"

# ---- 1. latency ---------------------------------------------------------------------------
if [[ $cores -ge 2 ]]; then server_cpus=0; client_cpus=1; else server_cpus=-; client_cpus=-; fi
start_server "$server_cpus" --workers 1
client=(python3 "$here/latency.py" 127.0.0.1 "$PORT" "$work/records.jsonl" "$LATENCY_N")
[[ "$client_cpus" != - ]] && client=(taskset -c "$client_cpus" "${client[@]}")
latency=$("${client[@]}")
echo "latency (1 record per request, keep-alive, server on 1 core): $latency   [load $(load_now)]"

# ---- 2. the same answers as batch prediction ------------------------------------------------
# One thread and slices of 128, as the server runs them: the same bits are expected for the
# list; one record per request is a different batch (last-bit float differences).
"$JSON2VEC" predict --config "$root/bench/accuracy/diamonds.yaml" --ckpt_path "$ckpt" \
  --data.predict="$work/records500.jsonl" --data.batch_size=128 --trainer.num_threads=1 \
  --prediction_writer.format=jsonl --prediction_writer.path="$work/predictions" --trainer.enable_progress_bar=false > /dev/null
same=$(python3 "$here/compare.py" 127.0.0.1 "$PORT" "$work/records500.jsonl" "$work/predictions/rank-0.jsonl")
echo "vs json2vec predict: $same"
[[ "$(field "$same" "['one_list']['identical'] == json.loads(sys.argv[1])['one_list']['numbers']")" == True ]] ||
  { echo "bench/serve: the service's answers differ from json2vec predict" >&2; exit 1; }
stop_server

# ---- 3. throughput ------------------------------------------------------------------------
rows=()
throughput() {  # throughput WORKERS MAX_BATCH RECORDS_PER_REQUEST
  local workers=$1 batch=$2 per=$3
  start_server - --workers "$workers" --max_batch_size "$batch" --batch_timeout_ms 2
  wrk -t1 -c64 -d2s -s "$here/predict.lua" "http://127.0.0.1:$PORT" -- "$work/records.jsonl" "$per" > /dev/null  # warm-up
  local before_sum before_count before_secs
  before_sum=$(metric json2vec_batch_size_sum); before_count=$(metric json2vec_batch_size_count)
  before_secs=$(metric json2vec_batch_duration_seconds_sum)
  local ticks0 ticks1
  ticks0=$(cpu_ticks)
  local out
  out=$(wrk -t1 -c64 -d"${DURATION}s" --timeout 5s -s "$here/predict.lua" "http://127.0.0.1:$PORT" -- "$work/records.jsonl" "$per" | tail -1)
  ticks1=$(cpu_ticks)
  local sum count secs
  sum=$(metric json2vec_batch_size_sum); count=$(metric json2vec_batch_size_count); secs=$(metric json2vec_batch_duration_seconds_sum)
  stop_server
  local line
  line=$(python3 - "$out" "$per" "$workers" "$batch" "$before_sum" "$before_count" "$before_secs" "$sum" "$count" "$secs" "$(load_now)" "$((ticks1 - ticks0))" "$ticks_per_s" <<'EOF'
import json, sys
w = json.loads(sys.argv[1]); per, workers, batch = map(int, sys.argv[2:5])
b_sum, b_count, b_secs, sum_, count, secs = map(float, sys.argv[5:11])
cpu_seconds = int(sys.argv[12]) / int(sys.argv[13])
ok = w["statuses"].get("200", 0)
bad = sum(n for s, n in w["statuses"].items() if s != "200")
records = sum_ - b_sum
print(json.dumps({"workers": workers, "max_batch_size": batch, "records_per_request": per,
                  "requests_per_s": round(ok / w["seconds"]), "records_per_s": round(ok * per / w["seconds"]),
                  "p50_ms": w["p50_ms"], "p99_ms": w["p99_ms"], "non_200": bad,
                  "mean_batch": round(records / max(1, count - b_count), 1),
                  "forward_us_per_record": round((secs - b_secs) / max(1, records) * 1e6, 1),
                  # The server's CPU time (all threads) per record: unlike records/s, it does not
                  # depend on how much of the machine other processes (and wrk) take.
                  "server_cpu_us_per_record": round(cpu_seconds / max(1, ok * per) * 1e6, 1),
                  "server_cores_used": round(cpu_seconds / w["seconds"], 2),
                  "load": float(sys.argv[11])}))
EOF
)
  echo "throughput: $line"
  rows+=("$line")
}
for workers in 1 2; do
  for batch in 1 8 32 128; do throughput "$workers" "$batch" 1; done
done
throughput 2 128 16

# ---- 4. load test: valid and invalid requests, no 5xx, no memory growth ----------------------
start_server - --workers 2 --unknown_fields reject --max_body_bytes 65536 --max_records_per_request 1024
mixed() {  # mixed SECONDS MAX_REQUESTS
  wrk -t1 -c64 -d"$1s" --timeout 5s -s "$here/mixed.lua" "http://127.0.0.1:$PORT" -- "$work/records.jsonl" 70000 "$2" | tail -1
}
mixed 3 20000 > /dev/null  # warm-up: every code path, every thread's buffers
rss0=$(rss_kib)
round1=$(mixed "$LOAD_SECONDS" $((LOAD_REQUESTS / 2)))
rss1=$(rss_kib)
round2=$(mixed "$LOAD_SECONDS" $((LOAD_REQUESTS - LOAD_REQUESTS / 2)))
rss2=$(rss_kib)
echo "load test round 1: $round1  rss ${rss0} -> ${rss1} KiB"
echo "load test round 2: $round2  rss ${rss1} -> ${rss2} KiB"
fivexx=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1 ~ /^json2vec_requests_total/ && $1 ~ /code="5/ {n += $2} END {print n + 0}')
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")
stop_server
answered=$(( $(field "$round1" "['requests']") + $(field "$round2" "['requests']") ))
echo "load test: $answered requests answered, 5xx answered $fivexx, /health after $health, growth over round 2 $((rss2 - rss1)) KiB"
for r in "$round1" "$round2"; do
  [[ "$(field "$r" "['socket_errors']")" == 0 ]] || { echo "bench/serve: socket errors in the load test" >&2; exit 1; }
done
[[ "$fivexx" == 0 && "$health" == 200 ]] || { echo "bench/serve: load test failed" >&2; exit 1; }

# ---- summary ------------------------------------------------------------------------------
echo
echo "| workers | max_batch_size | records/request | records/s | p50 ms | p99 ms | mean batch | forward us/record | server CPU us/record | server cores used |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  python3 -c "
import json, sys; r = json.loads(sys.argv[1])
print(f\"| {r['workers']} | {r['max_batch_size']} | {r['records_per_request']} | {r['records_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_batch']} | {r['forward_us_per_record']} | {r['server_cpu_us_per_record']} | {r['server_cores_used']} |\")" "$r"
done
