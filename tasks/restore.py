"""Restoration tasks: resolve the model, colorize batches on Dask workers, write outputs atomically,
keep a manifest per run so that reruns skip what is done and retry what failed."""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from distributed import Client, as_completed
from PIL import Image
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from colorize_core.imageio import ImageReadError, ReaderConfig, decode_image
from colorize_core.inference import cpu_supports_bf16
from colorize_core.package import load_package
from colorize_core.restore import (
    RestoreConfig,
    encode_output,
    join_full_resolution,
    network_input,
    output_format,
    predict_small,
    provenance,
    uncertainty_map,
)
from colorize_core.shards import content_hash
from tasks import logger as get_run_logger
from tasks.registry import ModelRef
from tasks.storage import atomic_write, filesystem, join, read_bytes

MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("content_hash", pa.string()),
        ("output", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("decode", pa.string()),  # JSON of the decode settings
        ("status", pa.string()),  # done | skipped | failed
        ("error", pa.string()),
        ("seconds", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("run_id", pa.string()),
    ]
)
KEEP_DECODED_PIXELS = 64_000_000  # above this a batch re-decodes instead of holding every image


class KeyEscapeError(ValueError):
    pass


@dataclass
class RestoreSummary:
    run_id: str
    model: str
    seen: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0
    manifest: str = ""
    contact_sheet: str = ""
    outputs: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)

    def markdown(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        lines = [
            f"# Restoration run {self.run_id}",
            f"Model **{self.model}**; outputs under `{self.outputs}`; manifest `{self.manifest}`.",
            "",
            "| seen | done | skipped | failed | megapixels | seconds | images/s |",
            "|---|---|---|---|---|---|---|",
            f"| {self.seen} | {self.done} | {self.skipped} | {self.failed} | {self.megapixels:.1f} | {self.seconds:.1f} | {rate:.2f} |",
        ]
        if self.failures:
            lines += ["", "## Failures", "", "| source | reason |", "|---|---|"] + [f"| {s} | {r} |" for s, r in self.failures]
        return "\n".join(lines)


def output_key(source_root: str, uri: str, dest: str, prefix: str, src_format: str | None = None) -> str:
    """DEST/<model>-v<version>/<path relative to SOURCE>; refuses keys that would escape DEST."""
    root = source_root.rstrip("/").split("://")[-1]
    path = uri.split("://")[-1]
    rel = posixpath.basename(path) if path == root else path[len(root) :].lstrip("/")
    if not path.startswith(root) or rel.startswith("/") or ".." in rel.split("/") or not rel:
        raise KeyEscapeError(f"object key {rel!r} would escape the destination")
    norm = posixpath.normpath(rel)
    if norm.startswith("..") or posixpath.isabs(norm):
        raise KeyEscapeError(f"object key {rel!r} would escape the destination")
    if src_format:
        _, ext = output_format(src_format)
        if ext:
            norm = posixpath.splitext(norm)[0] + ext
    return join(dest, prefix, norm)


# ---------------------------------------------------------------- worker side (runs on Dask)

_MODELS: dict[str, tuple] = {}


def _load(ref: ModelRef):
    """The package, once per worker process, and whether bfloat16 gives the same colours here."""
    if ref.directory not in _MODELS:
        torch.set_num_threads(int(os.environ.get("COLORIZE_WORKER_THREADS", "1")))
        pkg = load_package(ref.directory)
        _MODELS[ref.directory] = (pkg, _bf16_agrees(pkg))
    return _MODELS[ref.directory]


def _bf16_agrees(pkg, tolerance: float = 1.0) -> bool:
    """bfloat16 autocast where the CPU has it, kept only if it decodes within `tolerance` ab of float32."""
    if not cpu_supports_bf16():
        return False
    g = torch.Generator().manual_seed(0)
    L = torch.rand(1, 1, 128, 128, generator=g) * 100
    cfg = RestoreConfig()
    a, _ = predict_small(pkg.model, L, pkg.model.centres, cfg, bf16=False)
    b, _ = predict_small(pkg.model, L, pkg.model.centres, cfg, bf16=True)
    return float((a - b).abs().mean()) < tolerance


def _thumb(arr: np.ndarray, side: int = 160) -> np.ndarray:
    img = Image.fromarray(arr if arr.dtype == np.uint8 else (arr // 257).astype(np.uint8))
    img.thumbnail((side, side))
    return np.asarray(img.convert("RGB"))


def restore_batch(
    items: list[dict], source_root: str, dest: str, ref: ModelRef, cfg: RestoreConfig, reader: ReaderConfig, run_id: str
) -> list[dict]:
    """Colorizes `items` (source, content_hash): one forward pass for the batch, outputs written
    atomically one by one. Every item gets a row; a bad item fails alone."""
    pkg, bf16 = _load(ref)
    settings = json.dumps(cfg.settings(), sort_keys=True)
    rows, ready, kept_pixels = [], [], 0
    for it in items:
        t0 = time.perf_counter()
        row = {
            "source": it["source"],
            "content_hash": it["content_hash"],
            "output": None,
            "model_name": ref.name,
            "model_version": ref.version,
            "decode": settings,
            "status": "failed",
            "error": None,
            "seconds": 0.0,
            "width": None,
            "height": None,
            "run_id": run_id,
        }
        try:
            data = read_bytes(it["source"])
            if content_hash(data) != it["content_hash"]:
                raise ImageReadError(it["source"], "changed while the run was reading it")
            img = decode_image(data, it["source"], reader)
            key = output_key(source_root, it["source"], dest, ref.prefix, img.format)
            row.update(height=img.size[0], width=img.size[1], output=key)
            L_small = torch.from_numpy(network_input(img, cfg.size))[None]  # (1, S, S)
            keep = kept_pixels + img.pixels.size <= KEEP_DECODED_PIXELS
            kept_pixels += img.pixels.size if keep else 0
            ready.append((row, L_small, img if keep else None, data, key, t0))
        except (ImageReadError, KeyEscapeError) as e:
            row["error"] = e.reason if isinstance(e, ImageReadError) else str(e)
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
        except Exception as e:  # storage or anything unforeseen: this item's failure, not the batch's
            row["error"] = f"{type(e).__name__}: {e}"
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
    if not ready:
        return rows
    t_fwd = time.perf_counter()
    ab_small, ent = predict_small(pkg.model, torch.stack([r[1] for r in ready]), pkg.model.centres, cfg, bf16)
    fwd_share = (time.perf_counter() - t_fwd) / len(ready)
    prov = provenance(ref.name, ref.version, cfg)
    for i, (row, _, img, data, key, t0) in enumerate(ready):
        try:
            img = img or decode_image(data, row["source"], reader)
            rgb = join_full_resolution(img, ab_small[i], cfg.strip_rows)
            atomic_write(key, encode_output(rgb, img, prov))
            if cfg.uncertainty:
                atomic_write(
                    posixpath.splitext(key)[0] + ".uncertainty.png", uncertainty_map(ent[i], pkg.bins.q, img.size, cfg.uncertainty_max_side)
                )
            row.update(status="done", before=_thumb(img.pixels), after=_thumb(rgb))
        except Exception as e:
            row.update(status="failed", error=f"{type(e).__name__}: {e}", output=None)
        row["seconds"] = time.perf_counter() - t0 + fwd_share
        rows.append(row)
        ready[i] = None  # release the decoded image
    return rows


# ---------------------------------------------------------------- client side (Prefect tasks)


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def remove_stale_temporaries(dest: str, prefix: str) -> int:
    """Temporary objects of an interrupted run (one writer per destination and model version)."""
    fs, root = filesystem(join(dest, prefix))
    if not fs.exists(root):
        return 0
    stale = [p for p in fs.find(root) if posixpath.basename(p).startswith("_tmp-")]
    for p in stale:
        fs.rm(p)
    return len(stale)


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def load_manifests(dest: str) -> pa.Table:
    """Every manifest row so far under DEST/_manifests (finished runs, and batches of killed ones)."""
    fs, root = filesystem(join(dest, "_manifests"))
    tables = []
    if fs.exists(root):
        for path in sorted(fs.find(root)):
            if path.endswith(".parquet") and not posixpath.basename(path).startswith("_tmp"):
                with fs.open(path, "rb") as f:
                    tables.append(pq.read_table(f, schema=MANIFEST_SCHEMA))
    return pa.concat_tables(tables) if tables else MANIFEST_SCHEMA.empty_table()


def done_hashes(manifests: pa.Table, ref: ModelRef, settings: str) -> dict[str, str]:
    """content hash -> output, for items done by this model version with these decode settings."""
    out = {}
    for r in manifests.to_pylist():
        if r["status"] == "done" and r["model_name"] == ref.name and r["model_version"] == ref.version and r["decode"] == settings:
            out[r["content_hash"]] = r["output"]
    return out


def write_manifest_part(dest: str, run_id: str, part: int, rows: list[dict]) -> str:
    table = pa.Table.from_pylist([{k: r.get(k) for k in MANIFEST_SCHEMA.names} for r in rows], schema=MANIFEST_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    url = join(dest, "_manifests", run_id, f"part-{part:05d}.parquet")
    atomic_write(url, buf.getvalue())
    return url


@task(cache_policy=NONE)
def restore_on_dask(
    batches: list[list[dict]],
    source: str,
    dest: str,
    ref: ModelRef,
    cfg: RestoreConfig,
    reader: ReaderConfig,
    run_id: str,
    scheduler: str,
    progress: bool = True,
) -> list[dict]:
    """Batches on the workers, at most two per worker in flight; each finished batch's manifest rows
    are written at once, so a killed run leaves a record of what it completed."""
    from rich.progress import Progress

    rows: list[dict] = []
    total = sum(len(b) for b in batches)
    with Client(scheduler, set_as_default=False) as client, Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task("colorizing", total=total)
        window = 2 * max(1, len(client.scheduler_info()["workers"]))
        pending = iter(batches)
        queue = as_completed(
            [client.submit(restore_batch, b, source, dest, ref, cfg, reader, run_id, pure=False) for _, b in zip(range(window), pending)]
        )
        for part, fut in enumerate(queue):
            batch_rows = fut.result()
            write_manifest_part(dest, run_id, part, batch_rows)
            rows.extend(batch_rows)
            bar.advance(job, len(batch_rows))
            nxt = next(pending, None)
            if nxt is not None:
                queue.add(client.submit(restore_batch, nxt, source, dest, ref, cfg, reader, run_id, pure=False))
    return rows


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def finish_manifest(dest: str, run_id: str, rows: list[dict]) -> str:
    """One Parquet file for the run; its batch parts are removed once it is in place."""
    table = pa.Table.from_pylist([{k: r.get(k) for k in MANIFEST_SCHEMA.names} for r in rows], schema=MANIFEST_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    url = join(dest, "_manifests", f"{run_id}.parquet")
    atomic_write(url, buf.getvalue())
    fs, parts = filesystem(join(dest, "_manifests", run_id))
    if fs.exists(parts):
        fs.rm(parts, recursive=True)
    return url


def contact_sheet(rows: list[dict], limit: int = 12) -> bytes | None:
    """Before/after pairs of a sample of the run, two per row."""
    pairs = [(r["before"], r["after"]) for r in rows if r.get("status") == "done" and "before" in r][:limit]
    if not pairs:
        return None
    cell = 160
    cols = 2
    sheet = Image.new("RGB", (cols * 2 * cell + (cols - 1) * 8, ((len(pairs) + cols - 1) // cols) * cell), "white")
    for i, (b, a) in enumerate(pairs):
        x, y = (i % cols) * (2 * cell + 8), (i // cols) * cell
        sheet.paste(Image.fromarray(b).convert("RGB"), (x, y))
        sheet.paste(Image.fromarray(a), (x + cell, y))
    buf = io.BytesIO()
    sheet.save(buf, "PNG")
    return buf.getvalue()


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def publish_report(summary: RestoreSummary, rows: list[dict], dest: str) -> RestoreSummary:
    sheet = contact_sheet(rows)
    md = summary.markdown()
    if sheet:
        url = join(dest, "_reports", f"{summary.run_id}.png")
        atomic_write(url, sheet)
        summary.contact_sheet = url
        md += f"\n\n## Before / after\n\n![contact sheet](data:image/png;base64,{base64.b64encode(sheet).decode()})"
    create_markdown_artifact(key="restore-summary", markdown=md, description="Restoration run: counts, failures, contact sheet")
    logger = get_run_logger()
    for source, reason in summary.failures:
        logger.warning("failed %s: %s", source, reason)
    return summary
