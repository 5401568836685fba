"""The data half of the chain as one parent flow: preprocess, then bins over the new shards."""

from __future__ import annotations

from prefect import flow

from flows.bins import bins_flow
from flows.preprocess import PreprocessSummary, preprocess_flow


@flow(name="data")
def data_flow(
    source: str,
    shards: str,
    bins_out: str,
    method: str = "grid",
    k: int = 313,
    size: int = 256,
    val_fraction: float = 0.1,
    rows_per_shard: int = 64,
    split_by_folder: bool = False,
    dask_address: str | None = None,
    n_workers: int = 2,
) -> tuple[PreprocessSummary, dict]:
    summary = preprocess_flow(
        source, shards, size=size, val_fraction=val_fraction, rows_per_shard=rows_per_shard,
        split_by_folder=split_by_folder, dask_address=dask_address, n_workers=n_workers,
    )  # fmt: skip
    report = bins_flow(shards, bins_out, method=method, k=k, dask_address=dask_address, n_workers=n_workers)
    return summary, report
