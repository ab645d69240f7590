#!/usr/bin/env bash
# Sets up, builds, trains on the bundled example and writes predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
CONFIG=examples/transactions/config.yaml
echo "== fit (metrics of the final epoch)"
build/json2vec fit --config "$CONFIG"
echo "== test (best checkpoint)"
build/json2vec test --config "$CONFIG" --ckpt_path best
echo "== predict"
build/json2vec predict --config "$CONFIG" --ckpt_path best
echo "== two predictions, as JSON Lines"
build/json2vec predict --config "$CONFIG" --ckpt_path best --writer.format=jsonl --data.predict=examples/transactions/predict.jsonl >/dev/null
head -n 2 predictions/transactions/rank-0.jsonl
