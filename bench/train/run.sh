#!/usr/bin/env bash
# Training throughput, whole process (file -> trained model), json2vec vs the same
# architecture in plain PyTorch (Debian's python3-torch), measured in the same run.
# Usage: bench/train/run.sh [DATA.jsonl] [EPOCHS]   (default: diamonds, 1 epoch)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-${J2V_DATASETS:-../shared/datasets}/diamonds.jsonl}
EPOCHS=${2:-1}
JSON2VEC=${JSON2VEC:-build/json2vec}
if [ ! -f "$DATA" ]; then echo "no dataset at $DATA (set J2V_DATASETS)"; exit 0; fi
RECORDS=$(grep -c . "$DATA")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# json2vec three times: the default (strategy auto, one device: each batch of 256 split into a
# share per core, run on single-threaded replicas), the module itself with two intra-op
# threads (single_device), and two thread replicas of batch 128 each (the same effective
# batch of 256, DDP semantics).
run_cpp() {  # name, extra flags...
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$JSON2VEC" fit --config bench/accuracy/diamonds.yaml --data.train="$DATA" --data.validate_fraction=0 \
    --trainer.max_epochs="$EPOCHS" --trainer.default_root_dir="$tmp/runs" --trainer.enable_progress_bar=false \
    --trainer.enable_checkpointing=false --trainer.logger=false --early_stopping.enabled=false "$@" >/dev/null
  end=$(date +%s.%N)
  python3 -c "import json; s=$end-$start; print(json.dumps({'impl': '$name', 'records': $RECORDS, 'epochs': $EPOCHS, 'seconds': round(s, 3), 'records_per_second': round($RECORDS*$EPOCHS/s)}))"
}
default=$(run_cpp json2vec-default --data.batch_size=256 --trainer.num_threads=2)
echo "$default"
threads=$(run_cpp json2vec-intra-op2 --data.batch_size=256 --trainer.num_threads=2 --trainer.strategy=single_device)
echo "$threads"
replicas=$(run_cpp json2vec-devices2 --data.batch_size=128 --trainer.devices=2)
echo "$replicas"
py=$(/usr/bin/python3 bench/train/python_baseline.py --data "$DATA" --target price --epochs "$EPOCHS" \
  --batch-size 256 --d-model 64 --n-layers 2 --n-heads 4 --threads 2 --plr-activation relu | tail -1)
echo "$py"
python3 - "$default" "$threads" "$replicas" "$py" <<'PY'
import json, sys
default, threads, replicas, py = (json.loads(a) for a in sys.argv[1:])
for r in (default, threads, replicas):
    print(f"{r['impl']} / python = {r['records_per_second'] / py['records_per_second']:.2f}x")
PY
