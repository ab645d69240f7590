#!/usr/bin/env bash
# Nested training throughput against the machine's GEMM rate: 16,000 users whose records
# hold a 50-slot history branch of 4 fields (bench/train/nested_users.py), d_model 64,
# 2 layers, batch 256, one epoch.
#   bound = GEMM rate / (multiply-adds of the model's matrix products per record, forward and
#           backward, as executed (absent list items are packed away), counted by
#           --trainer.profiler=ops)
#   share = records/s / bound (records/s of the whole process, start-up included, the
#           fastest of REPEATS runs)
# The GEMM rates come from `json2vec bench gemm` on all cores: the GEMM json2vec runs (oneDNN),
# in its own process, best of three rounds. (Python's OpenBLAS, measured from python3-torch
# until 2026-12-03, reached half of it on some machines and so overstated the share.)
# PRECISION=medium runs the model and measures the GEMM rate with bfloat16 products
# (trainer.float32_matmul_precision), so the share is against the rate that precision reaches.
# Usage: [PRECISION=highest|medium] bench/train/nested.sh [USERS]
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS=${1:-16000}
PRECISION=${PRECISION:-highest}
JSON2VEC=${JSON2VEC:-build/json2vec}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 bench/train/nested_users.py "$USERS" 1 > "$tmp/users.jsonl"
cat > "$tmp/users.yaml" <<'YAML'
model:
  fields:
    age: number
    plan: category
    history:
      type: branch
      length: 50
      fields: {amount: number, kind: category, hour: number, online: boolean}
    churned: {type: boolean, target: true}
YAML
common=(fit --config "$tmp/users.yaml" --data.train="$tmp/users.jsonl" --data.validate_fraction=0 --data.batch_size=256
  --trainer.enable_progress_bar=false --trainer.enable_checkpointing=false --trainer.logger=false
  --early_stopping.enabled=false --trainer.max_epochs=1 --trainer.float32_matmul_precision="$PRECISION")
# Multiply-adds per step, from a short profiled run, on the module itself: LibTorch's operator
# profiler sees only the thread it started on, not the replicas the default runs shares on.
"$JSON2VEC" "${common[@]}" --trainer.default_root_dir="$tmp/ops" --trainer.limit_train_batches=3 \
  --trainer.profiler=ops --trainer.strategy=single_device >/dev/null 2>&1
macs=$(grep -o "matrix multiplications: [0-9.e+]*" "$tmp"/ops/version_0/fit-ops.txt | awk '{print $3}')
# The fastest of REPEATS runs (default 3), one at a time: on a shared virtual machine a
# neighbour's burst slows single runs by up to 2x, and the fastest is the least disturbed.
runs=()
for _ in $(seq "${REPEATS:-3}"); do
  start=$(date +%s.%N)
  "$JSON2VEC" "${common[@]}" --trainer.default_root_dir="$tmp/run" >/dev/null 2>&1
  end=$(date +%s.%N)
  runs+=("$(python3 -c "print($end - $start)")")
done
# Two GEMM rates: the step's own largest product (51200 x 64 by 64 x 256: thin, memory-bound)
# and a large square one (4096 x 1024 by 1024 x 1024: what the cores can do at best).
# The machine's rate with json2vec's own GEMM, measured after the run on the same cores.
rates=$("$JSON2VEC" bench gemm --float32_matmul_precision "$PRECISION" | python3 -c "import json, sys; r = json.load(sys.stdin); print(r['thin']['multiply_adds_per_second'], r['square']['multiply_adds_per_second'])")
python3 - "$PRECISION" "$USERS" "$macs" $rates "${runs[@]}" <<'PY'
import json, sys
precision, users, macs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
thin, square = float(sys.argv[4]), float(sys.argv[5])
runs = [float(s) for s in sys.argv[6:]]
seconds = min(runs)
rate = users / seconds
per_record = macs / 256
print(json.dumps({"float32_matmul_precision": precision, "users": users, "seconds": round(seconds, 1), "runs_seconds": [round(s, 1) for s in runs],
                  "records_per_second": round(rate),
                  "gemm_multiply_adds_per_record": round(per_record),
                  "share_of_bound_at_square_gemm_rate": round(rate * per_record / square, 3),
                  "share_of_bound_at_the_steps_own_gemm_rate": round(rate * per_record / thin, 3),
                  "square_gemm_multiply_adds_per_second": round(square), "thin_gemm_multiply_adds_per_second": round(thin)}))
PY
