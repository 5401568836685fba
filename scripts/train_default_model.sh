#!/usr/bin/env bash
# Trains the bundled default model with the project's own flows: corpus -> preprocess -> bins -> train.
# Hours on 2 CPU cores; the checkpoint chosen by validation is what ships (see colorize_core/default_model/MODEL_CARD.md).
# An interrupted run continues exactly: RESUME=.state/checkpoints/<run>/step-NNNNNNN.pt scripts/train_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${COLORIZE_HOME:-.state}
STEPS=${STEPS:-16000}
INIT=${INIT:-colorize_core/default_model}  # the previous default model: this run goes on from it
.venv/bin/python scripts/corpus/build_corpus.py --out "$STATE/corpus" --debs "$STATE/debs" --pypi "$STATE/pypi"
.venv/bin/colorize preprocess "$STATE/corpus" "$STATE/corpus_shards" --split-by-folder --rows-per-shard 32
.venv/bin/colorize bins "$STATE/corpus_shards" --out "$STATE/corpus_bins/canonical.npz" --method canonical
.venv/bin/colorize train "$STATE/corpus_shards" --bins "$STATE/corpus_bins/canonical.npz" --arch small \
  --set steps="$STEPS" --set batch_size=16 --set augment.crop=176 --set lr=3e-4 \
  --set augment.degrade.p=0.5 --set val_every=500 --set val_images=64 --set checkpoint_every=250 \
  --init-model "$INIT" --model-name colorizer-default ${RESUME:+--resume "$RESUME"} ${CHECKPOINT_DIR:+--checkpoint-dir "$CHECKPOINT_DIR"}
