"""Review pages for curators: a run's items, or two model versions side by side, as static pages.

A page is `index.html` (the template in `tasks/web/`, with its script inline) and `data/*.js` files
that it loads as scripts (they work from a local folder, where `fetch` of file:// URLs does not, from an
S3 bucket served as a website, and from any static host). Every link is relative. The first view loads
the template, one small meta file with the first page's items, and those items' thumbnails (lazily);
other pages, filtered views and the search index load only when asked for, so a run of 10,000 items
opens as fast as one of 50.
"""

from __future__ import annotations

import io
import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from urllib.parse import quote

import numpy as np
from PIL import Image
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.checks import ArgumentError
from tasks.layout import DestLayout
from tasks.manifest import ManifestRow, read_manifests
from tasks.storage import atomic_write, join, read_bytes, retrying

PAGE = 60  # items per page of a view
RUN_INFO = "run.json"  # beside a run's review page: what its colour tool's server needs to redraw items


def run_info(model_uri: str, settings: dict, sources: dict[str, str]) -> bytes:
    """The model (this very version), the settings and {hints key: source URL} of a run's items."""
    return json.dumps({"model_uri": model_uri, "settings": settings, "sources": sources}).encode()


def relative(url: str | None, base: str) -> str | None:
    """`url` as a link relative to the folder `base` (both on the same store)."""
    if not url:
        return None
    return quote(posixpath.relpath(url.split("://")[-1], base.split("://")[-1]), safe="/")  # names may hold '#', '?', '%'


def item(row: ManifestRow, base: str, root: str) -> dict:
    """One item of a run's page; `root` is the collection's root, to show names relative to it."""
    name = row.source.split("://")[-1]
    root_path = root.rstrip("/").split("://")[-1]
    if name.startswith(root_path + "/"):
        name = name[len(root_path) + 1 :]
    return {
        "n": name,
        "src": row.source,
        "h": row.content_hash,
        "s": row.status,
        "e": row.error if row.status == "failed" else None,
        "d": row.doubt,
        "t": row.seconds,
        "w": row.width,
        "hgt": row.height,
        "before": relative(row.grey_thumbnail, base),
        "after": relative(row.thumbnail, base),
        "beforeLarge": relative(row.grey_preview, base),
        "afterLarge": relative(row.preview, base),
        "u": relative(row.uncertainty, base),
        "out": relative(row.output, base),
    }


def _js(call: str, *args) -> bytes:
    return (f"window.REVIEW.{call}(" + ",".join(json.dumps(a, separators=(",", ":")) for a in args) + ");\n").encode()


def write_page(folder: str, meta: dict, views: dict[str, tuple[str, list[dict]]]) -> str:
    """Writes index.html and the data files under `folder`; `views` maps a view's key to its label and
    ordered items (the first is the default view). Returns the URL of index.html."""
    meta = dict(meta, views={}, first=[])
    files: dict[str, bytes] = {}
    for key, (label, items) in views.items():
        pages = [items[i : i + PAGE] for i in range(0, len(items), PAGE)]
        meta["views"][key] = {"label": label, "total": len(items), "pages": len(pages)}
        for n, page in enumerate(pages):
            files[f"data/{key}-{n:05d}.js"] = _js("page", key, n, page)
    first_key = next(iter(views))
    meta["first"] = views[first_key][1][:PAGE]
    if first_key != "all":
        raise ValueError("the first view of a page is 'all'")
    files["data/index.js"] = _js("setIndex", [[it["n"], i // PAGE, i % PAGE] for i, it in enumerate(views["all"][1])])
    files["data/run.js"] = _js("run", meta)
    template = resources.files("tasks.web").joinpath("review.html").read_text()
    files["index.html"] = template.encode()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: retrying(lambda: atomic_write(join(folder, kv[0]), kv[1]), kv[0]), files.items()))
    return join(folder, "index.html")


def run_review_page(
    layout: DestLayout, run_id: str, rows: list[ManifestRow], source: str, summary: str, settings: dict, model_uri: str = ""
) -> str:
    """The run's review page under DEST/_reports/<run>/: all items by name, failed ones, most uncertain
    first; and beside it what its colour tool's server needs to redraw an item (`review_server`)."""
    folder = layout.report(run_id)
    items = sorted((item(r, folder, source) for r in rows), key=lambda it: it["n"])
    sources = {it["n"]: it["src"] for it in items if it["s"] != "failed"}
    retrying(lambda: atomic_write(join(folder, RUN_INFO), run_info(model_uri, settings, sources)), RUN_INFO)
    failed = [it for it in items if it["s"] == "failed"]
    uncertain = sorted((it for it in items if it["d"] is not None), key=lambda it: -it["d"])
    first = next((r for r in rows if r.model_name), None)
    model = f"{first.model_name} v{first.model_version}" if first else layout.prefix
    meta = {
        "kind": "run",
        "id": run_id,
        "run_id": run_id,
        "title": f"{posixpath.basename(source.rstrip('/')) or source} · restoration run {run_id}",
        "summary": f"collection {source} · {summary} · model {model} · outputs in {layout.prefix}",
        "model": model,
        "model_name": first.model_name if first else "",
        "model_version": first.model_version if first else "",
        "settings": json.dumps(settings),
        "labels": ["grey input", "colorized"],
    }
    return write_page(
        folder, meta, {"all": ("All items", items), "failed": ("Failed", failed), "uncertain": ("Most uncertain first", uncertain)}
    )


@task(retries=2, retry_delay_seconds=2, cache_policy=NONE)
def write_run_review(
    layout: DestLayout, run_id: str, rows: list[ManifestRow], source: str, summary: str, settings: dict, model_uri: str = ""
) -> str:
    """The run's review page, linked from the flow run as a Prefect artifact."""
    url = run_review_page(layout, run_id, rows, source, summary, settings, model_uri)
    create_markdown_artifact(
        key="review-page", markdown=f"# Review page\n\n[{url}]({url})\n\n{summary}", description=f"Review page of restoration run {run_id}"
    )
    return url


def _ab(url: str) -> np.ndarray:
    from colorize_core.color import rgb_to_lab  # torch and numba, for comparisons only: not in every restore's client

    img = Image.open(io.BytesIO(retrying(lambda: read_bytes(url), url))).convert("RGB")
    img.thumbnail((256, 256))
    return rgb_to_lab(np.asarray(img))[..., 1:]


def mean_ab_difference(a_url: str, b_url: str) -> float:
    """Mean ab distance between two versions' thumbnails of one item (sizes matched)."""
    a, b = _ab(a_url), _ab(b_url)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return float(np.sqrt(((a[:h, :w] - b[:h, :w]) ** 2).sum(-1)).mean())


def rows_of_versions(dest: str, models: list[str]) -> dict[str, list[ManifestRow]]:
    """{folder: its rows} for the two output folders under DEST that a comparison is about; an
    ArgumentError naming the folders there when one has nothing done (checked before any flow runs)."""
    if len(models) != 2:
        raise ArgumentError(f"compare takes two model versions (as their folders under DEST, e.g. colorizer-v3 colorizer-v4), not {models}")
    rows = read_manifests(DestLayout(dest, "").manifests)
    by = {m: [r for r in rows if r.version_folder == m] for m in models}
    for m, found in by.items():
        if not any(r.status == "done" for r in found):
            known = sorted({r.version_folder for r in rows})
            raise ArgumentError(f"{dest} has no item done by {m} (versions there: {', '.join(known) or 'none'})")
    return by


@task(retries=2, retry_delay_seconds=2, cache_policy=NONE)
def write_compare_page(dest: str, a: list[ManifestRow], b: list[ManifestRow], labels: tuple[str, str]) -> tuple[str, int]:
    """Items done by both versions, side by side, sorted by how much the second changes them.
    Returns the page's URL and the number of items compared."""
    last_a = {r.content_hash: r for r in a if r.status == "done" and r.thumbnail}
    last_b = {r.content_hash: r for r in b if r.status == "done" and r.thumbnail}
    common = sorted(set(last_a) & set(last_b))
    folder = join(dest, "_reports", f"compare-{labels[0]}-vs-{labels[1]}")
    with ThreadPoolExecutor(8) as pool:
        diffs = list(pool.map(lambda h: mean_ab_difference(last_a[h].thumbnail, last_b[h].thumbnail), common))
    items = []
    for h, diff in zip(common, diffs):
        ra, rb = last_a[h], last_b[h]
        it = item(rb, folder, "")
        it.update(
            n=ra.source.rsplit("/", 1)[-1] if "/" in ra.source else ra.source,
            diff=diff,
            d=None,
            before=relative(ra.thumbnail, folder),
            beforeLarge=relative(ra.preview, folder),
            model=f"{labels[0]} -> {labels[1]}",
        )
        items.append(it)
    items.sort(key=lambda it: -it["diff"])
    meta = {
        "kind": "compare",
        "id": f"compare-{labels[0]}-vs-{labels[1]}",
        "run_id": f"compare-{labels[0]}-vs-{labels[1]}",
        "title": f"{labels[0]} against {labels[1]}",
        "summary": f"{len(items)} items colorized by both, most changed first (mean ab difference of the thumbnails)",
        "model": labels[1],
        "model_name": labels[1].rsplit("-v", 1)[0],
        "model_version": labels[1].rsplit("-v", 1)[-1],
        "settings": "",
        "labels": list(labels),
    }
    url = write_page(folder, meta, {"all": ("Most changed first", items)})
    create_markdown_artifact(key="compare-page", markdown=f"# {meta['title']}\n\n[{url}]({url})", description=meta["summary"])
    return url, len(items)
