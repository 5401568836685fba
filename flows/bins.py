"""Bins flow: shards -> ab histogram (Dask) -> grid or K-Means bins, prior, weights -> bin set."""

from __future__ import annotations

from prefect import flow

from colorize_core.bins import BinConfig
from colorize_core.rebalance import RebalanceConfig
from tasks.bins import compare_with_canonical, estimate_bins, histogram_on_dask, inputs_key, write_bin_set
from tasks.cluster import dask_client
from tasks.preprocess import committed_shards


@flow(name="bins", log_prints=True)
def bins_flow(
    shards: str,
    out: str,
    cfg: BinConfig = BinConfig(method="grid"),
    rebalance: RebalanceConfig = RebalanceConfig(),
    dask_address: str | None = None,
    n_workers: int = 2,
) -> dict:
    urls = committed_shards(shards)
    with dask_client(dask_address, n_workers) as client:
        hist = histogram_on_dask(urls, client.scheduler.address)
    bins = estimate_bins(hist, cfg, rebalance, urls)
    return write_bin_set(bins, out, dict(compare_with_canonical(bins, hist), inputs_key=inputs_key(urls, cfg, rebalance)))
