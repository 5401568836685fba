"""The restore worker: what runs on a Dask worker (or in this process for one file). Each batch's
sources are read once, hashed, set aside when done before, colorized in one forward pass, and written
atomically one by one, never over an existing output."""

from __future__ import annotations

import os
import posixpath
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image

from colorize_core.colorize import ColorizedBatch, colorize_array, png_bytes
from colorize_core.hints import Hint, hints_settings
from colorize_core.imageio import DecodedImage, ImageReadError, decode_image
from colorize_core.inference import inference_device
from colorize_core.package import load_package
from colorize_core.provenance import provenance
from colorize_core.settings import ColorizeConfig
from colorize_core.shards import content_hash
from colorize_core.writer import encode_output, jpeg_bytes, output_format, preview
from tasks.credentials import CredentialSigner, SigningIdentity, ingredient_of, signing_identity
from tasks.engine_choice import engine_for
from tasks.layout import KeyEscapeError
from tasks.manifest import ManifestRow
from tasks.model_ref import ModelRef
from tasks.restore_jobs import RestoreJob, Settled
from tasks.state import state_dir
from tasks.storage import LinkEscapeError, WriteBehind, atomic_write, exists, join, read_ahead, read_bytes, retrying

KEEP_DECODED_PIXELS = 64_000_000  # above this a batch re-decodes instead of holding every image
THUMB, PREVIEW = 256, 1024  # review page picture sizes (long side)


_MODELS: dict[str, tuple] = {}
_SIGNERS: dict[bytes, CredentialSigner] = {}


def _load(ref: ModelRef, size: int):
    """The package, once per worker process, and the engine it runs in here (tasks.engine_choice).

    One torch thread per worker process by default: the workers already use every core, and on a
    machine that other work keeps busy, multi-threaded element-wise kernels over strips wait on each
    other's spinning threads (a join a hundred times slower on two threads than on one)."""
    if ref.directory not in _MODELS:
        torch.set_num_threads(int(os.environ.get("COLORIZE_WORKER_THREADS", "1")))
        pkg = load_package(ref.directory)
        pkg.model.to(inference_device())
        _MODELS[ref.directory] = (pkg, engine_for(pkg, ref.sha256, size)[0])
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


def made_from(output: str, cid: str) -> bool:
    """Whether the output file at `output` was made from the source of content hash `cid`, by its
    Content Credentials (the grey original is their parent ingredient). Under a folder of one model
    version and one set of settings, such a file is this very output, made by a run or worker killed
    before it could record it: it may be made again. Without credentials nothing says so: False."""
    return ingredient_of(retrying(lambda: read_bytes(output), output)) == f"sha256:{cid}"


def warm_worker(ref: ModelRef, size: int) -> str:
    """Loads the model on a worker ahead of the first batch (while the client does other start-up
    work); the engine it will run in."""
    return str(_load(ref, size)[1])


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
    pkg, engine = _load(job.ref, job.cfg.size)
    signer = _signer(job.signing)
    rows: list[ManifestRow] = []
    ready: list[tuple[ManifestRow, DecodedImage | None, bytes, float, tuple[Hint, ...]]] = []
    kept = 0
    remade: set[str] = set()  # outputs whose name an equal output of a killed run or worker may hold
    for source, data in read_ahead(items, within=job.source_root):  # the next files arrive while this one is decoded
        t0 = time.perf_counter()
        row = job.row(source, None)
        hints, row.hints = job.hints_of(source)
        try:
            if isinstance(data, Exception):
                raise data
            row.content_hash = content_hash(data)
            if row.item in settled.done:
                row.status = "skipped"
                rows.append(row)
                continue
            if settled.only is not None and row.content_hash not in settled.only:
                continue
            img = decode_image(data, source, job.reader)
            row.output = job.layout.output_key(job.source_root, source, img.format, row.hints)
            if retrying(lambda: exists(row.output), row.output):  # a store restarting is waited for, as every write is
                if not made_from(row.output, row.content_hash):  # another file holds the name: it is kept,
                    row.output = job.layout.content_key(row.output, row.content_hash)  # this output goes beside it
                remade.add(row.output)
            row.height, row.width = img.size
            keep = kept + img.pixels.size <= KEEP_DECODED_PIXELS
            kept += img.pixels.size if keep else 0
            ready.append((row, img if keep else None, data, time.perf_counter() - t0, hints))
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
    images = [img or decode_image(data, row.source, job.reader) for row, img, data, _, _ in ready]
    batch = ColorizedBatch(pkg, images, job.cfg, engine, [hints for *_, hints in ready])
    fwd_share = (time.perf_counter() - t_fwd) / len(ready)
    del images
    with WriteBehind() as writer:  # an image's writes overlap the next image's join and encoding
        for i in range(len(ready)):
            row, img, data, prep, hints = ready[i]
            ready[i] = None  # release our hold on the source bytes and the decoded image
            t0, result = time.perf_counter(), None
            try:
                img, result = batch.images[i], batch.colorized(i, PREVIEW if job.review else 0)
                prov = provenance(job.ref.name, job.ref.version, job.ref.sha256, job.cfg.settings() | hints_settings(hints) | {"engine": str(engine)})
                out = credentials(encode_output(result.rgb, img, prov), img, data, row.content_hash, prov, row.output, signer)
                writes = [(row.output, out, row.output in remade)]  # never over another output
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


def colorize_one(src: str, out: str, model: str, options: dict, sign: bool = True) -> ModelRef:
    """One file, by the same path as a batch of a restore run, in this process (no cluster, no flow):
    the model resolved, the user's options (`ColorizeConfig.from_options`) on its decode; returns the
    model it used."""
    from tasks.model_resolve import resolve_model  # in the client only: a worker is handed the resolved ModelRef

    ref = resolve_model(model)
    signing = signing_identity(state_dir()) if sign else None
    pkg, engine = _load(ref, options.get("size") or ColorizeConfig().size)
    cfg = ColorizeConfig.from_options(pkg.decode, **options).resolved(pkg.decode)
    data = read_bytes(src)
    img = decode_image(data, src)
    rgb = ColorizedBatch(pkg, [img], cfg, engine).colorized(0).rgb
    prov = provenance(ref.name, ref.version, ref.sha256, cfg.settings() | {"engine": str(engine)})
    atomic_write(out, credentials(encode_output(rgb, img, prov), img, data, content_hash(data), prov, out, _signer(signing)))
    return ref
