"""Preprocess flow: images under any fsspec URL -> Lab shards in Parquet, on Dask."""

from __future__ import annotations

import time
import uuid

from prefect import flow

from colorize_core.imageio import ReaderConfig
from colorize_core.shards import PreprocessConfig
from tasks.cluster import dask_client
from tasks.preprocess import (
    PreprocessSummary,
    clean_staging,
    folder_split,
    hash_on_dask,
    known_content,
    list_sources,
    publish_summary,
    shard_on_dask,
    write_quarantine,
)


@flow(name="preprocess", log_prints=True)
def preprocess_flow(
    source: str,
    shards: str,
    size: int = 256,
    val_fraction: float = 0.1,
    rows_per_shard: int = 64,
    max_pixels: int = ReaderConfig.max_pixels,
    split_by_folder: bool = False,
    dask_address: str | None = None,
    n_workers: int = 2,
) -> PreprocessSummary:
    """`split_by_folder`: images under SOURCE/train/ and SOURCE/val/ keep that split (a corpus split
    by subject); otherwise the split is a function of the content hash."""
    started = time.time()
    cfg = PreprocessConfig(size=size, val_fraction=val_fraction, reader=ReaderConfig(max_pixels=max_pixels))
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    summary = PreprocessSummary(run_id=run_id)

    images, others = list_sources(source)
    summary.seen, summary.not_images = len(images), len(others)
    present, quarantined = known_content(shards)
    with dask_client(dask_address, n_workers) as client:
        scheduler = client.scheduler.address
        hashed = hash_on_dask(images, scheduler)
        todo, bad, seen_ids = [], [], set()
        for uri, cid, error in hashed:
            if error:
                bad.append({"source": uri, "id": None, "reason": error})
            elif cid in present:
                summary.already_present += 1
            elif cid in seen_ids:
                summary.duplicates += 1
            elif (uri, cid) in quarantined:
                summary.previously_quarantined += 1
            else:
                seen_ids.add(cid)
                todo.append((uri, cid, folder_split(uri, source) if split_by_folder else None))
        chunks = [todo[i : i + rows_per_shard] for i in range(0, len(todo), rows_per_shard)]
        written, shard_bad = shard_on_dask(chunks, shards, run_id, cfg, scheduler)
    bad += shard_bad
    clean_staging(shards, run_id)
    write_quarantine(shards, run_id, bad)
    summary.shards = written
    summary.quarantined = len(bad)
    summary.written = len(todo) - len(shard_bad)
    return publish_summary(summary, started)
