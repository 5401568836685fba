"""A restore run's bookkeeping on the client: what is done already (from the manifests), what to
read, the batches on Dask with each batch's manifest part written as it lands, and the run's manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NONE

from colorize_core.package_files import read_decode
from colorize_core.settings import ColorizeConfig
from tasks.checks import check_dest, check_source
from tasks.cluster import connect, map_as_completed
from tasks.layout import DestLayout, item_key, output_folder, version_folder
from tasks.manifest import ManifestRow, read_manifests, write_manifest
from tasks.model_ref import ModelRef
from tasks.model_resolve import resolve_model
from tasks.restore_jobs import RestoreJob, Settled, restore_batch
from tasks.storage import filesystem, known_by_stamp, remove_tree


@dataclass(frozen=True)
class RestorePlan:
    """What a run restores, checked and resolved once: the collection, the destination's layout for
    this model version and these settings, the model, and the settings with the package's decode."""

    source: str
    layout: DestLayout
    ref: ModelRef
    cfg: ColorizeConfig  # resolved: the decode is the package's unless the caller chose one

    @classmethod
    def of(cls, source: str, dest: str, ref: ModelRef, colorize: ColorizeConfig) -> "RestorePlan":
        """The plan for a resolved model: outputs of settings other than the package's own go to a
        folder of their own (`layout.output_folder`)."""
        package_decode = read_decode(ref.directory)
        cfg = colorize.resolved(package_decode)
        folder = output_folder(ref.prefix, cfg.settings(), ColorizeConfig().resolved(package_decode).settings())
        return cls(source, DestLayout(dest, folder), ref, cfg)


def plan_restore(source: str, dest: str, model: str, colorize: ColorizeConfig) -> RestorePlan:
    """Checks SOURCE and DEST (one-line errors before anything starts), resolves the model URI."""
    check_source(source)
    check_dest(source, dest)
    return RestorePlan.of(source, dest, resolve_model(model), colorize)


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
    """item (content hash, and hints id when given) -> the row that did it, for items done by this
    model (same package checksum where both record one) with these settings."""
    out = {}
    for r in rows:
        same_model = (
            r.model_name == job.ref.name and r.model_version == job.ref.version and (not r.model_sha256 or r.model_sha256 == job.ref.sha256)
        )
        if r.status == "done" and same_model and r.decode == job.settings and r.content_hash:
            out[r.item] = r
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
        item = item_key(cid, job.hints_of(uri)[1]) if cid else None
        if item in done:
            rows.append(skipped_row(job, uri, done[item]))
        elif cid is None or only is None or cid in only:
            todo.append(uri)
    return rows, todo


def skipped_row(job: RestoreJob, uri: str, earlier: ManifestRow) -> ManifestRow:
    """This run's record of an item an earlier run did: its output and pictures, for the review page."""
    keep = ("output", "width", "height", "doubt", "uncertainty", "thumbnail", "preview", "grey_thumbnail", "grey_preview", "hints")
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
            batch_rows = [skipped_row(job, r.source, done[r.item]) if r.status == "skipped" else r for r in batch_rows]
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
