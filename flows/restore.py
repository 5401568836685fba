"""Restore flow: bulk colorization of a collection, from object storage back to object storage."""

from __future__ import annotations

import time
import uuid

from prefect import flow

from colorize_core.imageio import ReaderConfig
from colorize_core.restore import RestoreConfig
from tasks.cluster import dask_client
from tasks.preprocess import hash_on_dask, list_sources
from tasks.registry import DEFAULT_MODEL_URI, ModelRef, resolve
from tasks.restore import (
    RestoreSummary,
    done_hashes,
    finish_manifest,
    load_manifests,
    publish_report,
    remove_stale_temporaries,
    restore_on_dask,
)
from tasks.storage import join


@flow(name="restore", log_prints=True)
def restore_flow(
    source: str,
    dest: str,
    model: str = DEFAULT_MODEL_URI,
    decode: str = "annealed-mean",
    temperature: float = 0.38,
    top_k: int = 5,
    size: int = 256,
    uncertainty: bool = False,
    batch_size: int = 8,
    max_pixels: int = ReaderConfig.max_pixels,
    dask_address: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
) -> RestoreSummary:
    started = time.time()
    cfg = RestoreConfig(method=decode, temperature=temperature, top_k=top_k, size=size, uncertainty=uncertainty)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    ref: ModelRef = resolve(model)
    summary = RestoreSummary(run_id=run_id, model=f"{ref.name} v{ref.version}", outputs=join(dest, ref.prefix))
    images, _ = list_sources(source)
    remove_stale_temporaries(dest, ref.prefix)
    done = done_hashes(load_manifests(dest), ref, _settings(cfg))
    with dask_client(dask_address, n_workers) as client:
        hashed = hash_on_dask(images, client.scheduler.address)
        rows, todo = [], []
        for uri, cid, error in hashed:
            base = {
                "source": uri,
                "content_hash": cid,
                "model_name": ref.name,
                "model_version": ref.version,
                "decode": _settings(cfg),
                "run_id": run_id,
                "seconds": 0.0,
            }
            if error:
                rows.append(dict(base, status="failed", error=error))
            elif cid in done:
                rows.append(dict(base, status="skipped", output=done[cid], error="already done by this model version"))
            else:
                todo.append({"source": uri, "content_hash": cid})
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        rows += restore_on_dask(
            batches, source, dest, ref, cfg, ReaderConfig(max_pixels=max_pixels), run_id, client.scheduler.address, progress
        )
    summary.seen = len(images)
    summary.done = sum(r["status"] == "done" for r in rows)
    summary.skipped = sum(r["status"] == "skipped" for r in rows)
    summary.failed = sum(r["status"] == "failed" for r in rows)
    summary.failures = [(r["source"], r["error"]) for r in rows if r["status"] == "failed"]
    summary.megapixels = sum((r.get("width") or 0) * (r.get("height") or 0) for r in rows if r["status"] == "done") / 1e6
    summary.manifest = finish_manifest(dest, run_id, rows)
    summary.seconds = time.time() - started
    return publish_report(summary, rows, dest)


def _settings(cfg: RestoreConfig) -> str:
    import json

    return json.dumps(cfg.settings(), sort_keys=True)
