"""Training throughput on this CPU, for the small and the full ECCV16 network: images a second, the
share of step time spent waiting for data (one loader process, archival-scan degradations on), and
the precision training chose by measuring (float32 against bfloat16 autocast, timed on the model)."""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from colorize_core.bins import canonical_bins
from colorize_core.data import AugmentConfig
from colorize_core.degrade import DegradeConfig
from colorize_core.models import ModelConfig
from colorize_core.rebalance import ABHistogram, fit_prior
from colorize_core.shards import PreprocessConfig, make_row, rows_to_table
from colorize_core.train import TrainConfig, train
from tests.photos import real_photo_bytes

RUNS = {"small": (40, 16), "eccv16": (6, 8)}  # architecture: (steps, batch)
DATA_WAIT_TARGET = 0.05


def shards(root: Path):
    rows = [make_row(d, n, PreprocessConfig(), split="train") for n, d in real_photo_bytes().items()] * 4
    for i in range(4):
        pq.write_table(rows_to_table(rows[i::4]), root / f"part-{i}.parquet")
    hist = ABHistogram()
    for r in rows:
        hist.add(np.frombuffer(r["ab"], np.int8).reshape(-1, 2))
    return sorted(glob.glob(str(root / "part-*.parquet"))), fit_prior(canonical_bins(with_reference_prior=False), hist)


def main() -> bool:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        urls, bins = shards(Path(tmp))
        for arch, (steps, batch) in RUNS.items():
            cfg = TrainConfig(
                steps=steps, batch_size=batch, val_every=10**9, checkpoint_every=10**9, loader_workers=1,
                augment=AugmentConfig(crop=176, shuffle_buffer=32, degrade=DegradeConfig(p=0.5)),
            )  # fmt: skip
            r = train(bins, urls, lambda u: open(u, "rb"), ModelConfig(arch), cfg, tmp)
            met = r.data_wait < DATA_WAIT_TARGET
            ok &= met
            print(
                f"{arch}, batch {batch}, crop 176, {r.precision} (chosen by measuring): {steps * batch / r.seconds:.1f} img/s, "
                f"data wait {r.data_wait:.1%} (target < {DATA_WAIT_TARGET:.0%}: {'met' if met else 'MISSED'})",
                flush=True,
            )
    return ok
