#!/usr/bin/env bash
# Batch prediction at scale: trains a small model, then runs `json2vec predict` over N
# records to Parquet and to JSON Lines and prints records/s and peak RSS (which should not
# grow with N), and checks the output has N rows in input order.
#   bench/predict/run.sh                          # flat: 1M and 10M; nested: 1M (~10 GB of disk)
#   FLAT="200000" NESTED="20000" bench/predict/run.sh   # a quick look
# Flat: the bundled transactions model (5 fields). Nested: the orders example (a list of up
# to 12 items of 6 fields, dateparts, text), records from `json2vec generate orders`.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/json2vec
WORK=${WORK:-/tmp/j2v_bench_predict}
mkdir -p "$WORK"

train() {  # name config epochs -> prints the checkpoint
  local name=$1 config=$2 epochs=$3
  local root=$WORK/runs_$name
  if [ ! -f "$root/version_0/checkpoints/last.ckpt" ]; then
    rm -rf "$root"
    $BIN fit --config "$config" --trainer.max_epochs="$epochs" --trainer.default_root_dir="$root" \
      --trainer.enable_progress_bar=false > "$WORK/fit_$name.log" 2>&1
  fi
  echo "$root/version_0/checkpoints/last.ckpt"
}

flat_records() {  # n file: transactions-like records (the model's five input fields)
  local n=$1 file=$2
  [ -f "$file" ] && return
  awk -v n="$n" 'BEGIN {
    srand(11); split("books coffee grocery electronics travel online_shop fuel jewelry", m, " ")
    split("DE FR US GB NL ES", c, " ")
    for (i = 0; i < n; i++)
      printf("{\"amount\":%.2f,\"merchant\":\"%s\",\"hour\":%d,\"country\":\"%s\",\"card_present\":%s}\n",
             exp(3 + rand() * 2), m[1 + int(rand() * 8)], int(rand() * 24), c[1 + int(rand() * 6)],
             rand() < 0.7 ? "true" : "false")
  }' > "$file.tmp" && mv "$file.tmp" "$file"
}

nested_records() {  # n file
  local n=$1 file=$2
  [ -f "$file" ] && return
  $BIN generate orders --rows "$n" --seed 3 --max_items 12 --output "$file"
}

predict() {  # label config ckpt input format
  local label=$1 config=$2 ckpt=$3 input=$4 format=$5
  local out=$WORK/out_$label log=$WORK/time.log
  rm -rf "$out"
  /usr/bin/time -f '%M %e' -o "$log" $BIN predict --config "$config" --ckpt_path "$ckpt" --data.predict="$input" \
    --prediction_writer.path="$out" --prediction_writer.format="$format" --trainer.enable_progress_bar=false > /dev/null
  read -r kib seconds < "$log"
  local n check
  n=$(wc -l < "$input")
  check=$(node bench/predict/check_output.mjs "$out/rank-0.$format" "$input" 2>&1 || true)
  awk -v label="$label" -v n="$n" -v s="$seconds" -v kib="$kib" -v check="$check" 'BEGIN {
    printf("%-24s %9d records %7.1f s %8.0f records/s  peak RSS %4d MiB  %s\n", label, n, s, n / s, kib / 1024, check) }'
  rm -rf "$out"
}

flat_ckpt=$(train transactions examples/transactions/config.yaml 10)
for n in ${FLAT:-1000000 10000000}; do
  flat_records "$n" "$WORK/flat_$n.jsonl"
  for format in parquet jsonl; do predict "flat_${n}_$format" examples/transactions/config.yaml "$flat_ckpt" "$WORK/flat_$n.jsonl" "$format"; done
done
# The orders example's training data, as scripts/demo.sh makes it, when the demo has not run.
for split in "train 6000 1" "test 1000 2"; do
  set -- $split
  [ -f "examples/orders/$1.jsonl" ] || $BIN generate orders --rows "$2" --seed "$3" --max_items 12 --output "examples/orders/$1.jsonl"
done
nested_ckpt=$(train orders examples/orders/config.yaml 2)
for n in ${NESTED:-1000000}; do
  nested_records "$n" "$WORK/nested_$n.jsonl"
  for format in parquet jsonl; do predict "nested_${n}_$format" examples/orders/config.yaml "$nested_ckpt" "$WORK/nested_$n.jsonl" "$format"; done
done
