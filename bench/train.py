"""Training throughput of the small network on CPU and the share of step time spent waiting for data.

Baseline: loading in the training process (loader_workers=0); ours: one loader process (the
default). Also float32 against bfloat16 autocast where the CPU has it."""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.timing import report
from colorize_core.bins import canonical_bins
from colorize_core.data import AugmentConfig
from colorize_core.inference import cpu_supports_bf16
from colorize_core.models import ModelConfig
from colorize_core.rebalance import ABHistogram, fit_prior
from colorize_core.shards import PreprocessConfig, make_row, rows_to_table
from colorize_core.train import TrainConfig, train
from tests.photos import real_photo_bytes

STEPS, BATCH = 30, 16


def shards(root: Path):
    rows = [make_row(d, n, PreprocessConfig(), split="train") for n, d in real_photo_bytes().items()] * 4
    for i in range(4):
        pq.write_table(rows_to_table(rows[i::4]), root / f"part-{i}.parquet")
    hist = ABHistogram()
    for r in rows:
        hist.add(np.frombuffer(r["ab"], np.int8).reshape(-1, 2))
    return sorted(glob.glob(str(root / "part-*.parquet"))), fit_prior(canonical_bins(with_reference_prior=False), hist)


def run(urls, bins, tmp, workers: int, bf16: bool):
    cfg = TrainConfig(
        steps=STEPS,
        batch_size=BATCH,
        val_every=10**9,
        checkpoint_every=10**9,
        loader_workers=workers,
        bf16=bf16,
        augment=AugmentConfig(crop=176, shuffle_buffer=32),
    )
    return train(bins, urls, lambda u: open(u, "rb"), ModelConfig("small"), cfg, tmp)


def main() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        urls, bins = shards(Path(tmp))
        base = run(urls, bins, tmp, 0, False)
        ours = run(urls, bins, tmp, 1, False)
        print(
            f"small, fp32, batch {BATCH}, crop 176: {STEPS * BATCH / base.seconds:.1f} img/s in-process loading (data wait {base.data_wait:.1%}), "
            f"{STEPS * BATCH / ours.seconds:.1f} img/s with a loader process (data wait {ours.data_wait:.1%})"
        )
        ok = report("train step, loader process", ours.seconds, base.seconds, "in-process loading") and ours.data_wait < 0.10
        if cpu_supports_bf16():
            bf = run(urls, bins, tmp, 1, True)
            print(f"small, bf16 autocast: {STEPS * BATCH / bf.seconds:.1f} img/s (data wait {bf.data_wait:.1%})")
            report("train step, bf16 autocast", bf.seconds, ours.seconds, "float32")
        print(f"data wait target < 10%: {'met' if ours.data_wait < 0.10 else 'MISSED'}")
        return ok
