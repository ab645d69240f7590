#!/usr/bin/env bash
# Pretrain without labels, then fine-tune with few labels (model.init_from), against the
# same few labels from scratch. Every schema is inferred (json2vec fit without fields):
# the pretraining schema has no target (each field masked now and then), the fine-tuning one
# names the target, and init_from carries over every field they share.
#   [DATA=FILE] [TARGET=NAME] [DROP="a b"] [LABELS=300] [EPOCHS=40] [PRE_EPOCHS=10] \
#   [SEEDS="0 1 2"] [FINE_ARGS=...] [METRIC=auc|rmse|accuracy] bench/lifecycle/finetune.sh
# DATA defaults to ../shared/datasets/wa_churn.jsonl (TARGET churn); the last 20% of its
# records are the test set, the rest (labels removed, DROP keys too) the unlabeled pool, and
# the first LABELS of them the labeled set. Prints the target's test AUC per seed and the mean.
set -euo pipefail
cd "$(dirname "$0")/../.."
J2V=${JSON2VEC:-build/json2vec}
DATA=${DATA:-../shared/datasets/wa_churn.jsonl}
TARGET=${TARGET:-churn}
DROP=${DROP:-}
LABELS=${LABELS:-300}
SEEDS=${SEEDS:-0 1 2}
if [ ! -f "$DATA" ]; then echo "finetune: $DATA not found (set DATA)" >&2; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PY=/usr/bin/python3
$PY - "$work" "$DATA" "$TARGET" "$LABELS" "$DROP" <<'PY'
import json, random, sys
work, data, target, n, drop = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split()
rows = [json.loads(l) for l in open(data) if l.strip()]
random.Random(0).shuffle(rows)
cut = len(rows) * 4 // 5
def strip(r, keep_target):
    r = {k: v for k, v in r.items() if k not in drop and (keep_target or k != target)}
    return r
with open(f"{work}/unlabeled.jsonl", "w") as f:
    for r in rows[:cut]: f.write(json.dumps(strip(r, False)) + "\n")
with open(f"{work}/labeled.jsonl", "w") as f:
    for r in rows[:n]: f.write(json.dumps(strip(r, True)) + "\n")
with open(f"{work}/test.jsonl", "w") as f:
    for r in rows[cut:]: f.write(json.dumps(strip(r, True)) + "\n")
PY
quiet="--trainer.enable_progress_bar=false"
start=$(date +%s)
$J2V fit --data.train="$work/unlabeled.jsonl" --trainer.max_epochs=${PRE_EPOCHS:-10} \
  --trainer.default_root_dir="$work/pre" $quiet >/dev/null 2>"$work/pre.err"
echo "pretrained on $(wc -l < "$work/unlabeled.jsonl") unlabeled records of $DATA in $(( $(date +%s) - start )) s"
pre="$work/pre/version_0/checkpoints/last.ckpt"
metric() { $PY -c 'import json,sys; m=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(m["record.'"$TARGET"'/test:'"${METRIC:-auc}"':content"])'; }
sum_scratch=0; sum_fine=0; n=0
for seed in $SEEDS; do
  common="--data.train=$work/labeled.jsonl --data.test=$work/test.jsonl --model.target=$TARGET \
    --trainer.max_epochs=${EPOCHS:-40} --trainer.seed=$seed $quiet"
  $J2V fit $common --trainer.default_root_dir="$work/scratch$seed" >/dev/null 2>&1
  scratch=$($J2V test --config "$work/scratch$seed/version_0/config.yaml" --ckpt_path best 2>/dev/null | metric)
  $J2V fit $common --model.init_from="$pre" ${FINE_ARGS:-} --trainer.default_root_dir="$work/fine$seed" >/dev/null 2>"$work/fine.err"
  fine=$($J2V test --config "$work/fine$seed/version_0/config.yaml" --ckpt_path best 2>/dev/null | metric)
  echo "seed $seed: $LABELS labels, test ${METRIC:-auc} of $TARGET: from scratch $scratch, fine-tuned from the pretrained model $fine"
  sum_scratch=$($PY -c "print($sum_scratch + $scratch)"); sum_fine=$($PY -c "print($sum_fine + $fine)"); n=$((n + 1))
done
grep -m1 "field state kept" "$work/fine.err" || true
$PY -c "print(f'mean over {$n} seeds: from scratch {$sum_scratch/$n:.4f}, fine-tuned {$sum_fine/$n:.4f}')"
