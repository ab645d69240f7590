#!/usr/bin/env bash
# Two json2vec jobs started together on one machine, against one alone: each should finish
# within 2.5x of its solo time on 2 cores (its fair share is half the machine).
#   bench/contention/run.sh [EPOCHS]        (default 20; the bundled transactions example)
# Set GOMP_SPINCOUNT=300000 (libgomp's own default) to see what the launcher's setting avoids.
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs=${1:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
job() {
  build/json2vec fit --config examples/transactions/config.yaml --trainer.max_epochs="$epochs" \
    --trainer.enable_progress_bar=false --trainer.enable_checkpointing=false --early_stopping.enabled=false \
    --trainer.logger=false --trainer.default_root_dir="$work/$1" >/dev/null
}
seconds() { local start=$(date +%s.%N); "$@"; awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b - a}'; }
solo=$(seconds job solo)
seconds job a >"$work/a.txt" &
seconds job b >"$work/b.txt"
wait
a=$(cat "$work/a.txt"); b=$(cat "$work/b.txt")
awk -v s="$solo" -v a="$a" -v b="$b" \
  'BEGIN{printf "solo %.2f s; together %.2f s and %.2f s; ratio %.2f and %.2f (goal <= 2.5)\n", s, a, b, a / s, b / s}'
