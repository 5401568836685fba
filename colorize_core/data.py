"""Streaming Lab shards for training: row batches read with pyarrow, never the whole data set.

`open_file` is injected by the caller (fsspec at the edge), so the core stays storage-agnostic.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset, get_worker_info

from .degrade import DegradeConfig, degrade
from .shards import check_schema, decode_lab


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 176  # training crop (multiple of 8 keeps the 1/4 and 1/8 grids aligned)
    scale_min: float = 0.75  # random rescale of the stored image before cropping
    scale_max: float = 1.25
    flip: bool = True
    shuffle_buffer: int = 256  # examples held for shuffling
    degrade: DegradeConfig = DegradeConfig()  # archival-scan degradations of L (the ab target is untouched)


def open_local(path: str) -> BinaryIO:
    """The `open_file` for local paths: a module-level function, so a spawned loader worker can unpickle it."""
    return open(path, "rb")


def read_rows(url: str, open_file: Callable[[str], BinaryIO], split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(L (H, W) float32, ab (H, W, 2) int8) per row of `split`, one row group at a time."""
    with open_file(url) as f:
        pf = pq.ParquetFile(f)
        check_schema(pf.schema_arrow, url)
        for batch in pf.iter_batches(batch_size=32, columns=["split", "height", "width", "L", "ab"]):
            d = batch.to_pydict()
            for s, h, w, L, ab in zip(d["split"], d["height"], d["width"], d["L"], d["ab"]):
                if s == split:
                    yield decode_lab(L, ab, h, w)


def augment(L: np.ndarray, ab: np.ndarray, cfg: AugmentConfig, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rescale, crop and flip -> L (1, crop, crop) float, ab (2, crop, crop) int8."""
    x = torch.cat([torch.from_numpy(L.copy())[None], torch.from_numpy(ab.astype(np.float32)).permute(2, 0, 1)])  # (3, H, W)
    h, w = x.shape[1:]
    s = max(rng.uniform(cfg.scale_min, cfg.scale_max), cfg.crop / min(h, w))
    if abs(s - 1.0) > 1e-3:
        x = F.interpolate(x[None], size=(max(cfg.crop, round(h * s)), max(cfg.crop, round(w * s))), mode="bilinear", align_corners=False)[0]
    h, w = x.shape[1:]
    top, left = rng.randint(0, h - cfg.crop), rng.randint(0, w - cfg.crop)
    x = x[:, top : top + cfg.crop, left : left + cfg.crop]
    if cfg.flip and rng.random() < 0.5:
        x = x.flip(-1)
    L_out = x[:1].contiguous()
    if cfg.degrade.p > 0:
        L_out = degrade(L_out[0], rng, cfg.degrade)[0][None]
    return L_out, x[1:].round().clamp(-128, 127).to(torch.int8)


class ShardStream(IterableDataset):
    """Endless training examples from shards, split over DDP ranks and loader workers.

    Each (rank, worker) pair reads its own part of every epoch; an epoch of a part is a
    deterministic function of (seed, epoch, part), shuffled within a buffer that empties at the
    epoch's end. Every example carries (epoch, index, worker slot), so a resumed run restarts
    each part at its exact position. The loader hands out batches from its workers in turn, so a
    run resumed at step s rotates the slots by s: the batch after the resume comes from the part
    an uninterrupted run would have drawn it from, and the run sees the same batches.
    """

    def __init__(
        self,
        urls: list[str],
        open_file: Callable[[str], BinaryIO],
        cfg: AugmentConfig,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        start: list[tuple[int, int]] = ((0, 0),),  # per worker slot: (epoch, examples of that epoch consumed)
        rotation: int = 0,  # the step the run (re)starts at; slot = (worker id + rotation) % workers
    ):
        self.urls, self.open_file, self.cfg = list(urls), open_file, cfg
        self.seed, self.rank, self.world = seed, rank, world
        self.start, self.rotation = [tuple(p) for p in start], rotation

    def _epoch(self, epoch: int, part: int, parts: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = random.Random(f"{self.seed}-{epoch}-{part}")
        urls = self.urls[:]
        random.Random(f"{self.seed}-{epoch}").shuffle(urls)
        by_shard = len(urls) >= parts  # enough shards: split by file; otherwise by row
        buffer: list = []
        row = 0
        for url in urls[part::parts] if by_shard else urls:
            for L, ab in read_rows(url, self.open_file, "train"):
                row += 1
                if not by_shard and (row - 1) % parts != part:
                    continue
                buffer.append(augment(L, ab, self.cfg, rng))
                if len(buffer) >= self.cfg.shuffle_buffer:
                    yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int, int, int]]:
        info = get_worker_info()
        workers, worker_id = (info.num_workers, info.id) if info is not None else (1, 0)
        if workers != len(self.start):
            raise ValueError(f"the stream was set up for {len(self.start)} loader workers, runs in {workers}")
        slot = (worker_id + self.rotation) % workers
        part = self.rank * workers + slot  # with one worker: the rank, as before slots existed
        epoch, skip = self.start[slot]
        while True:
            n = 0
            for i, (L, ab) in enumerate(self._epoch(epoch, part, self.world * workers)):
                n += 1
                if i >= skip:
                    yield L, ab, epoch, i, slot
            if n == 0:
                raise ValueError(f"rank {self.rank}, loader slot {slot} has no training rows in {len(self.urls)} shards")
            epoch, skip = epoch + 1, 0


def load_split(
    urls: list[str], open_file: Callable[[str], BinaryIO], split: str = "val", limit: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(L, ab) rows of one split, at most `limit`: for the small validation set."""
    rows = (row for url in urls for row in read_rows(url, open_file, split))
    return list(itertools.islice(rows, limit))
