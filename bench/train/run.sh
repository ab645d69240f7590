#!/usr/bin/env bash
# Training throughput, whole process (file -> trained model), json2vec vs the same
# architecture in plain PyTorch (Debian's python3-torch), measured in the same run.
# Usage: bench/train/run.sh [DATA.jsonl] [EPOCHS]   (default: diamonds, 1 epoch)
# Each implementation runs REPEATS times (default 3), one run at a time, and reports its
# fastest: on a shared virtual machine a neighbour's burst slows single runs by up to 2x,
# and the fastest run is the one least disturbed.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-${J2V_DATASETS:-../shared/datasets}/diamonds.jsonl}
EPOCHS=${2:-1}
REPEATS=${REPEATS:-3}
JSON2VEC=${JSON2VEC:-build/json2vec}
if [ ! -f "$DATA" ]; then echo "no dataset at $DATA (set J2V_DATASETS)"; exit 0; fi
RECORDS=$(grep -c . "$DATA")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# json2vec four ways: the default (strategy auto, one device: each batch of 256 split into a
# share per core, run on single-threaded replicas), the module itself with two intra-op
# threads (single_device), two thread replicas of batch 128 each (the same effective
# batch of 256, DDP semantics), and the default with bfloat16 matrix products.
run_cpp_once() {  # name, extra flags...
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$JSON2VEC" fit --config bench/accuracy/diamonds.yaml --data.train="$DATA" --data.validate_fraction=0 \
    --trainer.max_epochs="$EPOCHS" --trainer.default_root_dir="$tmp/runs" --trainer.enable_progress_bar=false \
    --trainer.enable_checkpointing=false --trainer.logger=false --early_stopping.enabled=false "$@" >/dev/null
  end=$(date +%s.%N)
  python3 -c "import json; s=$end-$start; print(json.dumps({'impl': '$name', 'records': $RECORDS, 'epochs': $EPOCHS, 'seconds': round(s, 3), 'records_per_second': round($RECORDS*$EPOCHS/s)}))"
}
fastest() {  # JSON lines on stdin -> the one with the most records/s, with every run's seconds
  python3 -c "
import json, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
best = max(runs, key=lambda r: r['records_per_second'])
best['runs_seconds'] = [r['seconds'] for r in runs]
print(json.dumps(best))"
}
run_cpp() {
  for _ in $(seq "$REPEATS"); do run_cpp_once "$@"; done | fastest
}
default=$(run_cpp json2vec-default --data.batch_size=256 --trainer.num_threads=2)
echo "$default"
threads=$(run_cpp json2vec-intra-op2 --data.batch_size=256 --trainer.num_threads=2 --trainer.strategy=single_device)
echo "$threads"
replicas=$(run_cpp json2vec-devices2 --data.batch_size=128 --trainer.devices=2)
echo "$replicas"
# The default with bfloat16 products (float32 accumulation, float32 weights and activations):
# a precision Python's float32 run does not use, reported beside the like-for-like figures.
medium=$(run_cpp json2vec-matmul-medium --data.batch_size=256 --trainer.num_threads=2 \
  --trainer.float32_matmul_precision=medium)
echo "$medium"
py=$(for _ in $(seq "$REPEATS"); do
  /usr/bin/python3 bench/train/python_baseline.py --data "$DATA" --target price --epochs "$EPOCHS" \
    --batch-size 256 --d-model 64 --n-layers 2 --n-heads 4 --threads 2 --plr-activation relu | tail -1
done | fastest)
echo "$py"
python3 - "$default" "$threads" "$replicas" "$medium" "$py" <<'PY'
import json, sys
default, threads, replicas, medium, py = (json.loads(a) for a in sys.argv[1:])
for r in (default, threads, replicas, medium):
    print(f"{r['impl']} / python = {r['records_per_second'] / py['records_per_second']:.2f}x")
PY
