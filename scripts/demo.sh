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
build/json2vec predict --config "$CONFIG" --ckpt_path best --prediction_writer.format=jsonl --data.predict=examples/transactions/predict.jsonl >/dev/null
head -n 2 predictions/transactions/rank-0.jsonl

# Nested records: synthetic orders with line items and every kind of field (see
# examples/orders/config.yaml); `flagged` needs one item to be fragile *and* expensive.
ORDERS=examples/orders/config.yaml
echo "== nested orders: generate, fit, test"
build/json2vec generate orders --rows 6000 --seed 1 --max_items 12 --output examples/orders/train.jsonl
build/json2vec generate orders --rows 1000 --seed 2 --max_items 12 --output examples/orders/test.jsonl
build/json2vec fit --config "$ORDERS"
build/json2vec test --config "$ORDERS" --ckpt_path best
echo "== nested predictions: one per order, one per item (record.items.returned)"
build/json2vec predict --config "$ORDERS" --ckpt_path best --prediction_writer.format=jsonl >/dev/null
head -n 1 predictions/orders/rank-0.jsonl | cut -c 1-600

# The engine on a model of one's own: an MLP on a CSV file, registered by name, its
# arguments linked from the data (examples/mlp_csv/config.yaml).
echo "== the engine on another model: MLP on a CSV, fit then test"
build/mlp_csv fit --config examples/mlp_csv/config.yaml --trainer.max_epochs=30 --trainer.enable_progress_bar=false
build/mlp_csv test --config examples/mlp_csv/config.yaml --ckpt_path best
