#!/usr/bin/env bash
# json2vec fit with an inferred schema (no model.fields, only model.target) against the
# hand-written config, same data, same trainer settings, same seed: the test metric of each.
#   bench/lifecycle/inferred_vs_handwritten.sh [TASK...]   (default: transactions orders wa_churn diamonds)
# transactions and orders are the bundled examples (their configs); wa_churn and diamonds
# are ../shared/datasets with bench/accuracy's configs, split 80/20 by line (i % 5 == 0 is test).
set -euo pipefail
cd "$(dirname "$0")/../.."
J2V=${JSON2VEC:-build/json2vec}
PY=/usr/bin/python3
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(transactions orders wa_churn diamonds)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
split() {  # $1 file -> $work/$2.train.jsonl, $work/$2.test.jsonl
  $PY - "$1" "$work/$2" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
lines = [l for l in open(src) if l.strip()]
with open(out + ".train.jsonl", "w") as tr, open(out + ".test.jsonl", "w") as te:
    for i, l in enumerate(lines): (te if i % 5 == 0 else tr).write(l)
PY
}
value() { $PY -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }
echo "| task | metric | hand-written | inferred | fit s (hand / inferred) |"
echo "|---|---|---|---|---|"
for t in "${tasks[@]}"; do
  case $t in
    transactions) config=examples/transactions/config.yaml; train=examples/transactions/train.jsonl
                  test=examples/transactions/test.jsonl; target=fraud; key="record.fraud/test:accuracy:content"; extra="--trainer.max_epochs=30" ;;
    orders) config=examples/orders/config.yaml; train=examples/orders/train.jsonl; test=examples/orders/test.jsonl
            target=flagged; key="record.flagged/test:auc:content"; extra="--trainer.max_epochs=14 --data.batch_size=64" ;;
    wa_churn|diamonds)
      [ -f ../shared/datasets/$t.jsonl ] || { echo "| $t | (../shared/datasets/$t.jsonl missing) | | | |"; continue; }
      split ../shared/datasets/$t.jsonl $t; config=bench/accuracy/$t.yaml; train=$work/$t.train.jsonl; test=$work/$t.test.jsonl
      if [ $t = wa_churn ]; then target=churn; key="record.churn/test:auc:content"; else target=price; key="record.price/test:rmse:content"; fi
      extra="" ;;
    *) echo "unknown task $t" >&2; exit 2 ;;
  esac
  common="--data.train=$train --data.test=$test --trainer.seed=0 --trainer.enable_progress_bar=false $extra"
  s=$(date +%s.%N)
  $J2V fit --config $config $common --trainer.default_root_dir=$work/$t.hand >/dev/null 2>&1
  hand_s=$($PY -c "import time; print(round(time.time() - $s, 1))")
  hand=$($J2V test --config $config $common --trainer.default_root_dir=$work/$t.hand --ckpt_path best 2>/dev/null | value "$key")
  s=$(date +%s.%N)
  $J2V fit $common --model.target=$target --trainer.default_root_dir=$work/$t.inferred >/dev/null 2>$work/$t.err
  inferred_s=$($PY -c "import time; print(round(time.time() - $s, 1))")
  inferred=$($J2V test --config $work/$t.inferred/version_0/config.yaml --ckpt_path best 2>/dev/null | value "$key")
  printf '| %s | %s | %.4f | %.4f | %s / %s |\n' "$t" "${key#*/test:}" "$hand" "$inferred" "$hand_s" "$inferred_s"
done
