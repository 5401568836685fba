"""Restoration tasks: colorize batches on Dask workers, write outputs atomically, keep a manifest per
run so that reruns skip what is done and retry what failed."""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from colorize_core.colorize import ColorizeConfig, ColorizedBatch, choose_precision, colorize_array, png_bytes
from colorize_core.imageio import DecodedImage, ImageReadError, ReaderConfig, decode_image
from colorize_core.inference import inference_device
from colorize_core.package import load_package
from colorize_core.provenance import provenance
from colorize_core.shards import content_hash
from colorize_core.writer import encode_output, jpeg_bytes, output_format, preview
from tasks import logger as get_run_logger
from tasks.cluster import connect, map_as_completed
from tasks.credentials import CredentialSigner, SigningIdentity
from tasks.layout import DestLayout, KeyEscapeError, version_folder
from tasks.manifest import ManifestRow, read_manifests, write_manifest
from tasks.registry import ModelRef
from tasks.storage import (
    LinkEscapeError,
    WriteBehind,
    atomic_write,
    exists,
    filesystem,
    join,
    known_by_stamp,
    read_ahead,
    read_bytes,
    remove_tree,
)

KEEP_DECODED_PIXELS = 64_000_000  # above this a batch re-decodes instead of holding every image
THUMB, PREVIEW = 256, 1024  # review page picture sizes (long side)


@dataclass(frozen=True)
class RestoreJob:
    """What every batch of a run shares (shipped once per batch to the workers)."""

    source_root: str
    layout: DestLayout
    ref: ModelRef
    cfg: ColorizeConfig  # resolved: the decode is the package's unless the caller chose one
    reader: ReaderConfig
    run_id: str
    review: bool = True  # thumbnails and previews for the run's review page
    signing: SigningIdentity | None = None  # Content Credentials in every output (None: none)

    @property
    def settings(self) -> str:
        return json.dumps(self.cfg.settings(), sort_keys=True)

    def row(self, source: str, content_hash: str | None, **kw) -> ManifestRow:
        r = self.ref
        return ManifestRow(source, content_hash, self.run_id, r.name, r.version, r.sha256, self.settings, folder=self.layout.prefix, **kw)


@dataclass(frozen=True)
class Settled:
    """What the workers check a file's content against once they have read it (shipped once to each)."""

    done: frozenset[str]  # content done before by this model version with these settings
    only: frozenset[str] | None = None  # the run is limited to these contents


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
    report: str = ""
    iiif: str = ""
    comparison: str = ""
    outputs: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> str:
        return f"{self.done} colorized, {self.skipped} already done, {self.failed} failed"

    def count(self, rows: list[ManifestRow]) -> None:
        self.done = sum(r.status == "done" for r in rows)
        self.skipped = sum(r.status == "skipped" for r in rows)
        self.failed = sum(r.status == "failed" for r in rows)
        self.failures = [(r.source, r.error or "") for r in rows if r.status == "failed"]
        self.megapixels = sum((r.width or 0) * (r.height or 0) for r in rows if r.status == "done") / 1e6

    def markdown(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        lines = [
            f"# Restoration run {self.run_id}",
            f"Model **{self.model}**; outputs under `{self.outputs}`; manifest `{self.manifest}`; review page `{self.report}`.",
            "",
            "| seen | done | skipped | failed | megapixels | seconds | images/s |",
            "|---|---|---|---|---|---|---|",
            f"| {self.seen} | {self.done} | {self.skipped} | {self.failed} | {self.megapixels:.1f} | {self.seconds:.1f} | {rate:.2f} |",
        ]
        if self.failures:
            lines += ["", "## Failures", "", "| source | reason |", "|---|---|"] + [f"| {s} | {r} |" for s, r in self.failures]
        return "\n".join(lines)


# ---------------------------------------------------------------- worker side (runs on Dask)

_MODELS: dict[str, tuple] = {}
_SIGNERS: dict[bytes, CredentialSigner] = {}


def _load(ref: ModelRef, size: int):
    """The package, once per worker process, and the precision measured for it here.

    One torch thread per worker process by default: the workers already use every core, and on a
    machine that other work keeps busy, multi-threaded element-wise kernels over strips wait on each
    other's spinning threads (measured: 1 MP joined in 0.04 s on one thread, 6.5 s on two)."""
    if ref.directory not in _MODELS:
        torch.set_num_threads(int(os.environ.get("COLORIZE_WORKER_THREADS", "1")))
        pkg = load_package(ref.directory)
        pkg.model.to(inference_device())
        _MODELS[ref.directory] = (pkg, choose_precision(pkg, size)[0])
        colorize_array(pkg, np.zeros((8, 8), np.uint8))  # the compiled per-pixel loops loaded before the first batch
    return _MODELS[ref.directory]


def _signer(identity: SigningIdentity | None) -> CredentialSigner | None:
    if identity is None:
        return None
    if identity.chain not in _SIGNERS:
        _SIGNERS[identity.chain] = CredentialSigner(identity)
    return _SIGNERS[identity.chain]


def credentials(out: bytes, img: DecodedImage, source: bytes, cid: str, prov: dict, name: str, signer: CredentialSigner | None) -> bytes:
    """The encoded output with its Content Credentials, the grey source (content hash `cid`) as the
    parent ingredient."""
    if signer is None:
        return out
    return signer.sign(out, output_format(img.format)[0], source, img.format, cid, prov, posixpath.basename(name))


def warm_worker(ref: ModelRef, size: int) -> bool:
    """Loads the model on a worker ahead of the first batch (while the client does other start-up work)."""
    return _load(ref, size)[1]


def _review_pictures(job: RestoreJob, row: ManifestRow, previews: tuple[Image.Image, Image.Image]) -> list[tuple[str, bytes]]:
    """(key, JPEG) of the thumbnails and previews of the grey input and the output (`ColorizedBatch.
    colorized`'s pair), their keys recorded in the row."""
    folder = join(job.layout.report(job.run_id), "img")
    stem = (row.content_hash or "x")[:16]
    out = []
    for prefix, large, tag in (("grey_", previews[0], "g"), ("", previews[1], "")):
        for attr, pic, suffix in (("preview", large, "p"), ("thumbnail", preview(large, THUMB), "t")):  # thumbnails from the previews
            out.append((join(folder, f"{stem}.{tag}{suffix}.jpg"), jpeg_bytes(pic, quality=82)))
            setattr(row, prefix + attr, out[-1][0])
    return out


def _finished(row: ManifestRow) -> Callable[[BaseException | None], None]:
    """The row's status once all its writes have ended."""

    def on_done(error: BaseException | None) -> None:
        if error is None:
            row.status = "done"
        else:
            row.status, row.error, row.output = "failed", f"{type(error).__name__}: {error}", None

    return on_done


def restore_batch(items: list[str], job: RestoreJob, settled: Settled) -> list[ManifestRow]:
    """Colorizes the sources in `items`: each read once, hashed, and set aside when its content was
    done before (a row with status "skipped" and no output, which the client completes from the
    manifests) or is not among `settled.only` (no row); one forward pass for the rest, outputs written
    atomically one by one. A bad item fails alone; storage errors are retried."""
    pkg, bf16 = _load(job.ref, job.cfg.size)
    signer = _signer(job.signing)
    rows: list[ManifestRow] = []
    ready: list[tuple[ManifestRow, DecodedImage | None, bytes, float]] = []
    kept = 0
    by_content: set[str] = set()  # outputs under their content's own name
    for source, data in read_ahead(items, within=job.source_root):  # the next files arrive while this one is decoded
        t0 = time.perf_counter()
        row = job.row(source, None)
        try:
            if isinstance(data, Exception):
                raise data
            row.content_hash = content_hash(data)
            if row.content_hash in settled.done:
                row.status = "skipped"
                rows.append(row)
                continue
            if settled.only is not None and row.content_hash not in settled.only:
                continue
            img = decode_image(data, source, job.reader)
            row.output = job.layout.output_key(job.source_root, source, img.format)
            if exists(row.output):  # another file holds the name: it is kept, this output goes beside it
                row.output = job.layout.content_key(row.output, row.content_hash)
                by_content.add(row.output)
            row.height, row.width = img.size
            keep = kept + img.pixels.size <= KEEP_DECODED_PIXELS
            kept += img.pixels.size if keep else 0
            ready.append((row, img if keep else None, data, time.perf_counter() - t0))
        except Exception as e:  # unreadable, escaping, storage gone: this item's failure, not the batch's
            row.error = (
                e.reason
                if isinstance(e, ImageReadError)
                else str(e)
                if isinstance(e, (KeyEscapeError, LinkEscapeError))
                else f"{type(e).__name__}: {e}"
            )
            row.seconds = time.perf_counter() - t0
            rows.append(row)
    if not ready:
        return rows
    t_fwd = time.perf_counter()
    images = [img or decode_image(data, row.source, job.reader) for row, img, data, _ in ready]
    batch = ColorizedBatch(pkg, images, job.cfg, bf16)
    fwd_share = (time.perf_counter() - t_fwd) / len(ready)
    del images
    with WriteBehind() as writer:  # an image's writes overlap the next image's join and encoding
        for i in range(len(ready)):
            row, img, data, prep = ready[i]
            ready[i] = None  # release our hold on the source bytes and the decoded image
            t0, result = time.perf_counter(), None
            try:
                img, result = batch.images[i], batch.colorized(i, PREVIEW if job.review else 0)
                prov = provenance(job.ref.name, job.ref.version, job.ref.sha256, job.cfg.settings())
                out = credentials(encode_output(result.rgb, img, prov), img, data, row.content_hash, prov, row.output, signer)
                # never replaces a file under its usual name; under the content's own name only an orphan
                # of a killed run of this very content, model and settings can be there
                writes = [(row.output, out, row.output in by_content)]
                row.doubt = result.doubt
                if result.doubt_map is not None:
                    row.uncertainty = job.layout.uncertainty_key(row.output)
                    writes.append((row.uncertainty, png_bytes(result.doubt_map)))
                if job.review:
                    writes += _review_pictures(job, row, result.previews)
                writer.put(writes, _finished(row))  # done once every write has landed
            except Exception as e:
                row.status, row.error, row.output = "failed", f"{type(e).__name__}: {e}", None
            row.seconds = prep + fwd_share + time.perf_counter() - t0
            rows.append(row)
            img = result = data = writes = None
    return rows


# ---------------------------------------------------------------- client side (Prefect tasks)


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def remove_stale_temporaries(layout: DestLayout, run_id: str | None = None) -> int:
    """Temporary objects of an interrupted run in the outputs, or of a worker killed mid-write in this
    one (outputs and, with `run_id`, this run's review pictures). Called under the destination's lease
    (at the start, and once the workers are done), so no other run and no worker of this one is
    writing there then."""
    stale = []
    for url in (layout.outputs, *([layout.report(run_id)] if run_id else [])):
        fs, root = filesystem(url)
        if fs.exists(root):
            stale += [(fs, p) for p in fs.find(root) if os.path.basename(p).startswith("_tmp-")]
    for fs, p in stale:
        fs.rm(p)
    return len(stale)


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def load_manifests(layout: DestLayout) -> list[ManifestRow]:
    return read_manifests(layout.manifests)


def done_items(rows: list[ManifestRow], job: RestoreJob) -> dict[str, ManifestRow]:
    """content hash -> the row that did it, for items done by this model (same package checksum where
    both record one) with these settings."""
    out = {}
    for r in rows:
        same_model = (
            r.model_name == job.ref.name and r.model_version == job.ref.version and (not r.model_sha256 or r.model_sha256 == job.ref.sha256)
        )
        if r.status == "done" and same_model and r.decode == job.settings and r.content_hash:
            out[r.content_hash] = r
    return out


def previous_version(rows: list[ManifestRow], ref: ModelRef) -> str | None:
    """The newest other version of the same model with outputs in DEST (its folder name), if any."""
    versions = {r.model_version for r in rows if r.model_name == ref.name and r.model_version != ref.version and r.status == "done"}
    if not versions:
        return None
    newest = max(versions, key=lambda v: (v.isdigit(), int(v) if v.isdigit() else 0, v))
    return version_folder(ref.name, newest)


@task(cache_policy=NONE)
def sort_items(
    images: dict[str, str], earlier: list[ManifestRow], done: dict[str, ManifestRow], only: list[str] | None, job: RestoreJob
) -> tuple[list[ManifestRow], list[str]]:
    """(rows of items settled without reading: done before, by the stamp their listing still shows
    beside their hash in a manifest; sources to read, in listing order). What a source holds is
    otherwise learnt by the worker that reads it to colorize it: each file is read once."""
    known = known_by_stamp(images, {(r.source, r.source_stamp): r.content_hash for r in earlier if r.source_stamp and r.content_hash})
    rows, todo = [], []
    for uri in images:
        cid = known.get(uri)
        if cid in done:
            rows.append(skipped_row(job, uri, done[cid]))
        elif cid is None or only is None or cid in only:
            todo.append(uri)
    return rows, todo


def skipped_row(job: RestoreJob, uri: str, earlier: ManifestRow) -> ManifestRow:
    """This run's record of an item an earlier run did: its output and pictures, for the review page."""
    keep = ("output", "width", "height", "doubt", "uncertainty", "thumbnail", "preview", "grey_thumbnail", "grey_preview")
    earlier_fields = {k: getattr(earlier, k) for k in keep}
    return job.row(uri, earlier.content_hash, status="skipped", error=f"already done by run {earlier.run_id}", **earlier_fields)


@task(cache_policy=NONE)
def restore_on_dask(
    batches: list[list[str]], job: RestoreJob, scheduler: str, done: dict[str, ManifestRow], only: list[str] | None = None, progress: bool = True
) -> list[ManifestRow]:
    """Batches on the workers (the scheduler hands each about one at a time); each finished batch's manifest rows
    are written at once, so a killed run leaves a record of what it completed. `done` and `only` as
    for `sort_items`: the workers set aside what they find done, and this completes its rows."""
    from rich.progress import Progress

    rows: list[ManifestRow] = []
    with connect(scheduler, set_as_default=False) as client, Progress(disable=not progress, transient=True) as bar:
        todo = bar.add_task("colorizing", total=sum(len(b) for b in batches))
        [settled] = client.scatter([Settled(frozenset(done), frozenset(only) if only is not None else None)], broadcast=True)
        for part, (i, batch_rows) in enumerate(map_as_completed(client, restore_batch, ((b, job, settled) for b in batches))):
            batch_rows = [skipped_row(job, r.source, done[r.content_hash]) if r.status == "skipped" else r for r in batch_rows]
            write_manifest(job.layout.part(job.run_id, part), batch_rows)
            rows.extend(batch_rows)
            bar.advance(todo, len(batches[i]))
    return rows


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def finish_manifest(layout: DestLayout, run_id: str, rows: list[ManifestRow], stamps: dict[str, str]) -> str:
    """One Parquet file for the run, each row with its source's listing stamp (what lets the next run
    skip reading it); the run's batch parts are removed once it is in place."""
    for r in rows:
        r.source_stamp = stamps.get(r.source)
    url = write_manifest(layout.run_manifest(run_id), rows)
    remove_tree(layout.run_parts(run_id))
    return url


def contact_sheet(rows: list[ManifestRow], limit: int = 12) -> bytes | None:
    """Before/after pairs of a sample of the run, two per row, from the review thumbnails."""
    pairs = [(r.grey_thumbnail, r.thumbnail) for r in rows if r.status == "done" and r.thumbnail][:limit]
    if not pairs:
        return None
    cell, cols = 160, 2
    sheet = Image.new("RGB", (cols * 2 * cell + (cols - 1) * 8, ((len(pairs) + cols - 1) // cols) * cell), "white")
    for i, (b, a) in enumerate(pairs):
        x, y = (i % cols) * (2 * cell + 8), (i // cols) * cell
        for dx, key in ((0, b), (cell, a)):
            pic = Image.open(io.BytesIO(read_bytes(key))).convert("RGB")
            pic.thumbnail((cell, cell))
            sheet.paste(pic, (x + dx, y))
    buf = io.BytesIO()
    sheet.save(buf, "PNG")
    return buf.getvalue()


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def publish_report(summary: RestoreSummary, rows: list[ManifestRow], layout: DestLayout) -> RestoreSummary:
    sheet = contact_sheet(rows)
    md = summary.markdown()
    if sheet:
        url = layout.contact_sheet(summary.run_id)
        atomic_write(url, sheet)
        summary.contact_sheet = url
        md += f"\n\n## Before / after\n\n![contact sheet](data:image/png;base64,{base64.b64encode(sheet).decode()})"
    create_markdown_artifact(key="restore-summary", markdown=md, description="Restoration run: counts, failures, contact sheet")
    logger = get_run_logger()
    for source, reason in summary.failures:
        logger.warning("failed %s: %s", source, reason)
    return summary


def colorize_one(src: str, out: str, ref: ModelRef, cfg: ColorizeConfig, signing: SigningIdentity | None = None) -> None:
    """One file, by the same path as a batch of a restore run, in this process (no cluster, no flow)."""
    torch.set_num_threads(int(os.environ.get("COLORIZE_WORKER_THREADS", "1")))  # see _load
    pkg = load_package(ref.directory)
    pkg.model.to(inference_device())
    cfg = cfg.resolved(pkg.decode)
    data = read_bytes(src)
    img = decode_image(data, src)
    rgb = ColorizedBatch(pkg, [img], cfg).colorized(0).rgb
    prov = provenance(ref.name, ref.version, ref.sha256, cfg.settings())
    atomic_write(out, credentials(encode_output(rgb, img, prov), img, data, content_hash(data), prov, out, _signer(signing)))
