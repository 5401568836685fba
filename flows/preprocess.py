"""Preprocess flow: images under any fsspec URL -> Lab shards in Parquet, on Dask, each file read once
(hashed, checked against what the shards hold, decoded, in one task) and deduplicated at commit; a
file listed unchanged since the run that read it is not read again."""

from __future__ import annotations

import time
import uuid

from prefect import flow

from colorize_core.shards import PreprocessConfig
from tasks.cluster import dask_client
from tasks.preprocess import (
    PreprocessSummary,
    chunks_for,
    clean_staging,
    folder_split,
    known_content,
    publish_summary,
    record_sources,
    recorded_sources,
    settled_by_listing,
    shard_on_dask,
    write_quarantine,
)
from tasks.sources import list_sources


@flow(name="preprocess", log_prints=True)
def preprocess_flow(
    source: str,
    shards: str,
    cfg: PreprocessConfig = PreprocessConfig(),
    rows_per_shard: int = 64,
    split_by_folder: bool = False,
    dask_address: str | None = None,
    n_workers: int = 2,
) -> PreprocessSummary:
    """`split_by_folder`: images under SOURCE/train/ and SOURCE/val/ keep that split (a corpus split
    by subject); otherwise the split is a function of the content hash."""
    started = time.time()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    summary = PreprocessSummary(run_id=run_id)

    images, others = list_sources(source)
    summary.seen, summary.not_images = len(images), len(others)
    known = known_content(shards)
    todo, unread = settled_by_listing(images, recorded_sources(shards), known)
    items = [(uri, folder_split(uri, source) if split_by_folder else None) for uri in todo]
    written, bad, counts, read = [], [], {"written": 0, "duplicates": 0, "already_present": 0, "previously_quarantined": 0}, []
    if items:
        with dask_client(dask_address, n_workers) as client:
            chunks = chunks_for(items, rows_per_shard, len(client.scheduler_info()["workers"]))
            written, bad, counts, read = shard_on_dask(chunks, shards, run_id, cfg, known, client.scheduler.address)
    clean_staging(shards, run_id)
    write_quarantine(shards, run_id, bad)
    record_sources(shards, run_id, read, images)
    summary.shards = written
    summary.quarantined = len(bad)
    summary.written = counts["written"]
    summary.duplicates = counts["duplicates"]
    summary.already_present = counts["already_present"] + unread["already_present"]
    summary.previously_quarantined = counts["previously_quarantined"] + unread["previously_quarantined"]
    summary.not_read = sum(unread.values())
    return publish_summary(summary, started)
