#!/usr/bin/env bash
# Data parallel on one machine: two thread replicas in one process against two ddp processes
# (c10d/Gloo over loopback), the same effective batch (2 x 128), one epoch of diamonds,
# whole process timed. Usage: bench/ddp/run.sh [DATA.jsonl] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-${J2V_DATASETS:-../shared/datasets}/diamonds.jsonl}
EPOCHS=${2:-1}
JSON2VEC=${JSON2VEC:-build/json2vec}
if [ ! -f "$DATA" ]; then echo "no dataset at $DATA (set J2V_DATASETS)"; exit 0; fi
RECORDS=$(grep -c . "$DATA")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {  # name, extra flags...
  local name=$1; shift
  local start end out
  start=$(date +%s.%N)
  out=$("$JSON2VEC" fit --config bench/accuracy/diamonds.yaml --data.train="$DATA" --data.batch_size=128 \
    --trainer.max_epochs="$EPOCHS" --trainer.default_root_dir="$tmp/$name" --trainer.enable_progress_bar=false \
    --early_stopping.enabled=false --trainer.seed=1 "$@" | tail -1)
  end=$(date +%s.%N)
  python3 - "$name" "$start" "$end" "$out" "$RECORDS" "$EPOCHS" <<'PY'
import json, sys
name, start, end, out, records, epochs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
s = end - start
print(json.dumps({"impl": name, "seconds": round(s, 2), "records_per_second": round(records * epochs / s),
                  "loss/validate": round(out.get("loss/validate", float("nan")), 5), "global_step": out["global_step"]}))
PY
}
run thread_replicas --trainer.strategy=thread_replicas --trainer.devices=2
run ddp_processes --trainer.strategy=ddp --trainer.devices=2
