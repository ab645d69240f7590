#!/usr/bin/env bash
# The engine's own cost per training step (callbacks, logging, checkpoints, scheduler):
# one epoch of `json2vec fit` against a bare loop over the same batches, d_model 64, on the
# bundled synthetic orders (nested, 6,000 records, batch 64). Best of 5 interleaved rounds.
# The goal is under 2%. engine_own_percent_of_step times the engine inside the run (span minus the
# model work the bare loop also does), which other load on the machine cannot skew; overhead_percent
# compares the two loops and moves by several percent with that load. Usage: bench/engine/run.sh [extra --key=value overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/json2vec}
echo "# engine bookkeeping only (no weight averaging)"
"$BIN" bench engine --config examples/orders/config.yaml --model.d_model=64 --trainer.weight_averaging=0 \
  --trainer.logger='[CSVLogger, TensorBoardLogger]' --trainer.callbacks='[LearningRateMonitor]' "$@" 2>/dev/null
echo "# with the default weight averaging (an EMA of the weights every step: a model feature, not bookkeeping)"
"$BIN" bench engine --config examples/orders/config.yaml --model.d_model=64 "$@" 2>/dev/null
