"""Training throughput on this CPU, for the small and the full ECCV16 network: images a second, the
share of step time spent waiting for data (one loader process, archival-scan degradations on), and
the precision training chose by measuring (float32 against bfloat16 autocast, timed on the model).
Then the loader alone, what it can feed a faster device: two workers against one."""

from __future__ import annotations

import glob
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from torch.utils.data import DataLoader

from bench.timing import report
from colorize_core.bins import canonical_bins
from colorize_core.data import AugmentConfig, ShardStream, open_local
from colorize_core.degrade import DegradeConfig
from colorize_core.models import ModelConfig
from colorize_core.rebalance import ABHistogram, fit_prior
from colorize_core.shards import PreprocessConfig, make_row, rows_to_table
from colorize_core.train import TrainConfig, train
from tests.photos import real_photo_bytes

RUNS = {"small": (40, 16), "eccv16": (6, 8)}  # architecture: (steps, batch)
AUGMENT = AugmentConfig(crop=176, shuffle_buffer=32, degrade=DegradeConfig(p=0.5))
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
                augment=AUGMENT,
            )  # fmt: skip
            r = train(bins, urls, open_local, ModelConfig(arch), cfg, tmp)
            met = r.data_wait < DATA_WAIT_TARGET
            ok &= met
            print(
                f"{arch}, batch {batch}, crop 176, {r.precision} (chosen by measuring): {steps * batch / r.seconds:.1f} img/s, "
                f"data wait {r.data_wait:.1%} (target < {DATA_WAIT_TARGET:.0%}: {'met' if met else 'MISSED'})",
                flush=True,
            )
        one, two = (loader_seconds(urls, w) for w in (1, 2))
        report("training loader alone, 512 photos of batch 16, 2 workers", two, one, "1 worker")
    return ok


def loader_seconds(urls: list[str], workers: int, batches: int = 32) -> float:
    """Seconds for `batches` batches once the workers are running (their start is not counted)."""
    stream = ShardStream(urls, open_local, AUGMENT, start=[(0, 0)] * workers)
    it = iter(DataLoader(stream, batch_size=16, num_workers=workers, prefetch_factor=2))
    for _ in range(2 * workers):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return time.perf_counter() - t0
