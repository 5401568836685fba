#!/usr/bin/env bash
# Trains the bundled default model with the project's own flows: corpus -> preprocess -> bins -> train.
# Hours on 2 CPU cores; the best validation checkpoint is what ships (see colorize_core/default_model/MODEL_CARD.md).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${COLORIZE_HOME:-.state}
STEPS=${STEPS:-8000}
.venv/bin/python infra/corpus/build_corpus.py --out "$STATE/corpus" --debs "$STATE/debs"
.venv/bin/colorize preprocess "$STATE/corpus" "$STATE/corpus_shards" --split-by-folder --rows-per-shard 32
.venv/bin/colorize bins "$STATE/corpus_shards" --out "$STATE/corpus_bins/canonical.npz" --method canonical
.venv/bin/colorize train "$STATE/corpus_shards" --bins "$STATE/corpus_bins/canonical.npz" --arch small \
  --steps "$STEPS" --batch-size 16 --crop 176 --lr 3e-4 --val-every 500 --val-images 64 \
  --checkpoint-every 500 --bf16 --model-name colorizer-default
