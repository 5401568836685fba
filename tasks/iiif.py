"""IIIF Presentation 3 manifests of restored items: how museums show collections (Mirador, Universal
Viewer, their own portals).

One canvas per item at the original's size, painted with a choice of the colorized image and the grey
original (the 1,024-pixel previews the workers made; the full-resolution output is linked as its
`rendering`), the provenance as metadata, the archive's rights statement when configured. One manifest
per run (beside its review page) and one per model version across runs (DEST/_iiif/<version>/).
IIIF ids are absolute URLs: the base is `COLORIZE_IIIF_BASE_URL` (where DEST is served, for example an
S3 website endpoint), else DEST's own URL (a local folder as file://).
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NONE

from colorize_core.provenance import NOTE
from tasks.layout import DestLayout
from tasks.manifest import ManifestRow
from tasks.storage import atomic_write, join, retrying

MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff"}


def base_url(dest: str) -> str:
    configured = os.environ.get("COLORIZE_IIIF_BASE_URL")
    if configured:
        return configured.rstrip("/")
    return dest.rstrip("/") if "://" in dest else Path(dest).resolve().as_uri()


def public(url: str, dest: str, base: str) -> str:
    """`url` (a key under DEST) as the public URL under `base`, percent-encoded: a key such as
    `%2e%2e/x.png` stays a name under DEST, and '#', '?' and '\\' stay part of it."""
    rel = posixpath.relpath(url.split("://")[-1], dest.rstrip("/").split("://")[-1] if "://" in dest else str(Path(dest).resolve()))
    return f"{base}/{quote(rel, safe='/')}"


def _en(text: str) -> dict:
    return {"en": [text]}


def _pair(label: str, value: str) -> dict:
    return {"label": _en(label), "value": _en(value)}


def build_manifest(rows: list[ManifestRow], dest: str, manifest_url: str, label: str, rights: str | None = None) -> dict:
    """A Presentation 3 manifest of the done items among `rows`, as plain JSON (the fields and order
    iiif-prezi3 writes; the tests validate it with that library, which costs half a second per run)."""
    base = base_url(dest)
    mid = public(manifest_url, dest, base)
    first = next((r for r in rows if r.status in ("done", "skipped") and r.preview), None)
    m = {"@context": "http://iiif.io/api/presentation/3/context.json", "id": mid, "type": "Manifest", "label": _en(label)}
    if first:
        settings = ", ".join(f"{k} {v}" for k, v in json.loads(first.decode).items())
        m["metadata"] = [
            _pair("Colorized", "automatically, by a trained model (IPTC: compositeWithTrainedAlgorithmicMedia)"),
            _pair("Model", f"{first.model_name} version {first.model_version}"),
            _pair("Model checksum (sha256)", first.model_sha256 or "not recorded"),
            _pair("Settings", settings),
            _pair("Run", first.run_id),
        ]
    m["summary"] = _en(f"Colorized automatically by a machine-learning model. {NOTE}")
    m["requiredStatement"] = _pair("Note", NOTE)
    if rights:
        m["rights"] = rights
    canvases = []
    for n, r in enumerate(r for r in rows if r.status in ("done", "skipped") and r.preview and r.grey_preview):
        cid = f"{mid}/canvas/{n}"
        canvas = {"id": cid, "type": "Canvas", "label": _en(r.source.rsplit("/", 1)[-1]), "height": r.height, "width": r.width}
        if r.output:
            canvas["rendering"] = [{"id": public(r.output, dest, base), "type": "Image", "label": _en("full-resolution colorized master"),
                                    "format": MIME.get(posixpath.splitext(r.output)[1].lower(), "image/jpeg")}]  # fmt: skip
        canvas["thumbnail"] = [{"id": public(r.thumbnail, dest, base), "type": "Image", "format": "image/jpeg"}]
        choice = [{"id": public(url, dest, base), "type": "Image", "height": r.height, "width": r.width, "format": "image/jpeg", "label": _en(name)}
                  for url, name in ((r.preview, "colorized"), (r.grey_preview, "grey original"))]  # fmt: skip
        anno = {"id": f"{mid}/annotation/{n}", "type": "Annotation", "motivation": "painting", "body": {"type": "Choice", "items": choice}, "target": cid}
        canvas["items"] = [{"id": f"{mid}/page/{n}", "type": "AnnotationPage", "items": [anno]}]
        canvases.append(canvas)
    m["items"] = canvases
    return m


@task(retries=2, retry_delay_seconds=2, cache_policy=NONE)
def write_iiif(
    layout: DestLayout, run_id: str, rows: list[ManifestRow], all_rows: list[ManifestRow], rights: str | None = None
) -> tuple[str, str]:
    """The run's manifest (DEST/_reports/<run>/manifest.json) and the model version's across runs
    (DEST/_iiif/<version>/manifest.json: the latest done row of every item)."""
    run_url = join(layout.report(run_id), "manifest.json")
    run_m = build_manifest(rows, layout.dest, run_url, f"Restoration run {run_id} ({layout.prefix})", rights)
    latest: dict[str, ManifestRow] = {}
    for r in all_rows + rows:
        if r.status == "done" and r.version_folder == layout.prefix and r.preview:
            latest[r.content_hash] = r
    coll_url = join(layout.dest, "_iiif", layout.prefix, "manifest.json")
    coll_m = build_manifest(
        sorted(latest.values(), key=lambda r: r.source), layout.dest, coll_url, f"Collection colorized by {layout.prefix}", rights
    )
    for url, m in ((run_url, run_m), (coll_url, coll_m)):
        data = json.dumps(m, indent=1).encode()
        retrying(lambda: atomic_write(url, data), url)  # noqa: B023
    return run_url, coll_url
