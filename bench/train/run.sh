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

start=$(date +%s.%N)
"$JSON2VEC" fit --config bench/accuracy/diamonds.yaml --data.train="$DATA" --data.validate_fraction=0 \
  --trainer.max_epochs="$EPOCHS" --trainer.default_root_dir="$tmp/runs" --trainer.enable_progress_bar=false \
  --trainer.enable_checkpointing=false --trainer.logger=false --trainer.num_threads=2 \
  --early_stopping.enabled=false >/dev/null
end=$(date +%s.%N)
cpp=$(python3 -c "print(f'{$RECORDS*$EPOCHS/($end-$start):.0f}')")
echo "{\"impl\":\"json2vec\",\"records\":$RECORDS,\"epochs\":$EPOCHS,\"seconds\":$(python3 -c "print(round($end-$start,3))"),\"records_per_second\":$cpp}"

py=$(/usr/bin/python3 bench/train/python_baseline.py --data "$DATA" --target price --epochs "$EPOCHS" \
  --batch-size 256 --d-model 64 --n-layers 2 --n-heads 4 --threads 2 --plr-activation relu | tail -1)
echo "$py"
python3 - "$cpp" "$py" <<'PY'
import json, sys
cpp = float(sys.argv[1]); py = json.loads(sys.argv[2])["records_per_second"]
print(f"json2vec / python = {cpp / py:.2f}x")
PY
