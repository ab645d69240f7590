#!/usr/bin/env bash
# Accuracy benchmark: json2vec (schema-only config, default settings) versus
# scikit-learn tree ensembles on the same deterministic 60/20/20 split.
#
# Usage: bench/accuracy/run.sh [TASK...]      (default: wa_churn diamonds)
#
# Environment:
#   JSON2VEC            json2vec binary (default: build/json2vec under the repo root)
#   J2V_DATASETS        directory holding <task>.jsonl (default: ../shared/datasets
#                       relative to the repo root)
#   PYTHON              python with scikit-learn + numpy (default: /usr/bin/python3
#                       if present, else python3)
#   J2V_BASELINES_ONLY  set to 1 to skip json2vec (baselines only)
#   J2V_KEEP            set to 1 to keep the temporary work directory
#
# Prints a markdown table on stdout; progress and tool logs go to stderr.
# Exits non-zero if any command fails. Exits 0 with a message if the dataset
# directory is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

abspath() {  # make $1 absolute relative to the invocation directory
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac
}

if [[ -n "${JSON2VEC:-}" ]]; then JSON2VEC="$(abspath "$JSON2VEC")"; else JSON2VEC="$root/build/json2vec"; fi
if [[ -n "${J2V_DATASETS:-}" ]]; then datasets="$(abspath "$J2V_DATASETS")"; else datasets="$root/../shared/datasets"; fi
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
baselines_only="${J2V_BASELINES_ONLY:-0}"

if [[ ! -d "$datasets" ]]; then
    echo "bench/accuracy: dataset directory '$datasets' not found; set J2V_DATASETS to the" \
         "directory holding wa_churn.jsonl and diamonds.jsonl. Skipping." >&2
    exit 0
fi
if [[ "$baselines_only" != 1 && ! -x "$JSON2VEC" ]]; then
    echo "bench/accuracy: json2vec binary '$JSON2VEC' not found or not executable" \
         "(build it, set JSON2VEC, or set J2V_BASELINES_ONLY=1)" >&2
    exit 1
fi

# task -> "target task positive metric json2vec-metric-key"
declare -A spec=(
    [wa_churn]="churn classification Yes auc record.churn/test:auc:content"
    [diamonds]="price regression - rmse record.price/test:rmse:content"
)

tasks=("$@")
[[ ${#tasks[@]} -gt 0 ]] || tasks=(wa_churn diamonds)
for t in "${tasks[@]}"; do
    [[ -n "${spec[$t]:-}" ]] || { echo "bench/accuracy: unknown task '$t' (known: ${!spec[*]})" >&2; exit 2; }
    [[ -f "$root/bench/accuracy/$t.yaml" ]] || { echo "bench/accuracy: missing config bench/accuracy/$t.yaml" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/j2v-accuracy.XXXXXX")"
if [[ "${J2V_KEEP:-0}" == 1 ]]; then
    echo "bench/accuracy: keeping work directory $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi

# Extract a field from a JSON line: json_get LINE KEY
json_get() {
    "$PYTHON" -c 'import json,sys
d = json.loads(sys.argv[1])
k = sys.argv[2]
if k not in d:
    sys.exit("key %r not in %s" % (k, sorted(d)))
print(d[k])' "$1" "$2"
}

# Row data, filled per task.
rows=()
timings=()
cd "$root"
for t in "${tasks[@]}"; do
    read -r target task positive metric j2v_key <<<"${spec[$t]}"
    data="$datasets/$t.jsonl"
    if [[ ! -f "$data" ]]; then
        echo "bench/accuracy: dataset '$data' not found; skipping $t" >&2
        continue
    fi
    dir="$work/$t"
    echo "== $t: split" >&2
    "$PYTHON" "$here/split.py" "$data" "$dir"

    echo "== $t: baselines" >&2
    pos_args=()
    [[ "$positive" == - ]] || pos_args=(--positive "$positive")
    base_out="$("$PYTHON" "$here/baseline.py" --train "$dir/train.jsonl" \
        --validate "$dir/validate.jsonl" --test "$dir/test.jsonl" \
        --target "$target" --task "$task" "${pos_args[@]}")"
    echo "$base_out" >&2
    rf_line="$(grep '"model":"random_forest"' <<<"$base_out")"
    hgb_line="$(grep '"model":"hist_gradient_boosting"' <<<"$base_out")"
    rf="$(json_get "$rf_line" value)";  rf_s="$(json_get "$rf_line" seconds)"
    hgb="$(json_get "$hgb_line" value)"; hgb_s="$(json_get "$hgb_line" seconds)"

    j2v="n/a"; j2v_s="n/a"
    if [[ "$baselines_only" != 1 ]]; then
        echo "== $t: json2vec fit" >&2
        start=$(date +%s.%N)
        # The same rows the baselines train on (train + validate); json2vec holds out its
        # default validate_fraction of them for early stopping, as a user would run it.
        cat "$dir/train.jsonl" "$dir/validate.jsonl" > "$dir/train_validate.jsonl"
        "$JSON2VEC" fit --config "bench/accuracy/$t.yaml" \
            --data.train="$dir/train_validate.jsonl" \
            --data.test="$dir/test.jsonl" --trainer.default_root_dir="$dir/runs" \
            --trainer.enable_progress_bar=false >&2
        echo "== $t: json2vec test" >&2
        "$JSON2VEC" test --config "bench/accuracy/$t.yaml" --data.test="$dir/test.jsonl" \
            --trainer.default_root_dir="$dir/runs" --ckpt_path best >"$dir/test.out"
        end=$(date +%s.%N)
        cat "$dir/test.out" >&2
        last="$(grep -v '^[[:space:]]*$' "$dir/test.out" | tail -n 1 || true)"
        [[ -n "$last" ]] || { echo "bench/accuracy: json2vec test printed nothing on stdout" >&2; exit 1; }
        j2v="$(json_get "$last" "$j2v_key")"
        j2v_s="$("$PYTHON" -c "print(round($end - $start, 1))")"
    fi

    wins="$("$PYTHON" - "$metric" "$j2v" "$rf" "$hgb" <<'PY'
import sys
metric, j2v, rf, hgb = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if j2v == "n/a":
    print("n/a")
else:
    j = float(j2v)
    best = max(rf, hgb) if metric == "auc" else min(rf, hgb)
    win = j > best if metric == "auc" else j < best
    print("yes" if win else "no")
PY
)"
    fmt() { "$PYTHON" -c 'import sys
v = sys.argv[1]
print(v if v == "n/a" else ("%.4f" if sys.argv[2] == "auc" else "%.2f") % float(v))' "$1" "$metric"; }
    rows+=("| $t | ${metric^^} | $(fmt "$j2v") | $(fmt "$rf") | $(fmt "$hgb") | $wins |")
    timings+=("| $t | $j2v_s | $rf_s | $hgb_s |")
done

echo
echo "| task | metric | json2vec | random forest | hist GBDT | json2vec wins? |"
echo "|---|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "\"json2vec wins?\" = better than both baselines (AUC: higher, RMSE: lower)."
echo
echo "| task | json2vec fit+test s | random forest s | hist GBDT s |"
echo "|---|---|---|---|"
for r in "${timings[@]}"; do echo "$r"; done
