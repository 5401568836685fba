"""Bin-estimation tasks: a Dask reduction of ab histograms over shards, then the bin set."""

from __future__ import annotations

import json

import dask.bag as db
import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from colorize_core.bins import BinConfig, BinSet, canonical_bins, grid_bins_from_histogram, kmeans_bins
from colorize_core.rebalance import ABHistogram, RebalanceConfig, fit_prior
from tasks import logger as get_run_logger
from tasks.cluster import connect
from tasks.figures import gamut_png, markdown_image, prior_png
from tasks.preprocess import read_shard_table
from tasks.storage import atomic_write


def shard_histogram(url: str, split: str = "train") -> np.ndarray:
    """(2R, 2R) ab counts of one shard's rows of `split` (runs on a Dask worker)."""
    table = read_shard_table(url, columns=["split", "ab"])
    hist = ABHistogram()
    for s, ab in zip(table.column("split").to_pylist(), table.column("ab").to_pylist()):
        if s == split:
            hist.add(np.frombuffer(ab, np.int8).reshape(-1, 2))
    return hist.counts


@task(cache_policy=NONE)
def histogram_on_dask(shard_urls: list[str], scheduler: str) -> ABHistogram:
    """Partial histograms per shard, summed in a tree reduction on the cluster."""
    if not shard_urls:
        raise ValueError("no committed shards to estimate bins from")
    with connect(scheduler, set_as_default=False) as client:
        bag = db.from_sequence(shard_urls, npartitions=len(shard_urls))
        total = bag.map(shard_histogram).reduction(sum, sum, split_every=8)
        return ABHistogram(client.compute(total).result())


@task(cache_policy=NONE)
def estimate_bins(hist: ABHistogram, cfg: BinConfig, rebalance: RebalanceConfig, shard_urls: list[str]) -> BinSet:
    if cfg.method == "grid":
        bins = grid_bins_from_histogram(hist.counts, cfg)
    elif cfg.method == "kmeans":
        bins = kmeans_bins(hist.sample(cfg.sample_size, cfg.seed), cfg)
    elif cfg.method == "canonical":
        bins = canonical_bins(with_reference_prior=False)
    else:
        raise ValueError(f"unknown bin method {cfg.method!r}: grid, kmeans or canonical")
    bins = bins.with_(params=dict(bins.params, method=cfg.method, shards=shard_urls))
    return fit_prior(bins, hist, rebalance)


def inputs_key(shard_urls: list[str], cfg: BinConfig, rebalance: RebalanceConfig) -> str:
    """Identifies a bin set's inputs: the same shards and parameters give the same key."""
    import hashlib

    text = json.dumps({"shards": sorted(shard_urls), "bins": cfg.__dict__, "rebalance": rebalance.__dict__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def compare_with_canonical(bins: BinSet, hist: ABHistogram) -> dict:
    canon = canonical_bins(with_reference_prior=False)
    canon_pts = {tuple(c) for c in canon.centres.astype(int).tolist()}
    seen = grid_bins_from_histogram(hist.counts, BinConfig(grid_size=10))
    seen_pts = {tuple(c) for c in seen.centres.astype(int).tolist()}
    return {
        "bins": bins.q,
        "canonical": canon.q,
        "canonical_seen": len(canon_pts & seen_pts),
        "extra_outside_canonical": len(seen_pts - canon_pts),
        "pixels": hist.total,
    }


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def write_bin_set(bins: BinSet, out: str, report: dict) -> dict:
    """The bin set, its report and its two pictures, each written atomically beside `out`."""
    base = out[: -len(".npz")] if out.endswith(".npz") else out
    gamut, prior = gamut_png(bins), prior_png(bins)
    atomic_write(out, bins.to_bytes())
    atomic_write(base + ".gamut.png", gamut)
    atomic_write(base + ".prior.png", prior)
    report = dict(report, checksum=bins.checksum, method=bins.params.get("method"), out=out)
    atomic_write(base + ".json", json.dumps(report, indent=2).encode())
    md = "\n".join(
        [f"# Bin set {bins.checksum[:12]}", "", "| what | value |", "|---|---|"]
        + [f"| {k} | {v} |" for k, v in report.items()]
        + ["", markdown_image(gamut, "quantised gamut"), markdown_image(prior, "prior, log scale")]
    )
    create_markdown_artifact(key="bin-set", markdown=md, description="Bin set: gamut and prior")
    get_run_logger().info("bin set %s: %s", out, json.dumps(report))
    return report
