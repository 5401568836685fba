"""Restore flow: bulk colorization of a collection, from object storage back to object storage."""

from __future__ import annotations

import functools
import os
import time
import uuid
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from colorize_core.imageio import ReaderConfig
from colorize_core.package_files import read_decode
from colorize_core.settings import ColorizeConfig
from flows.review import compare_flow
from tasks.cluster import ClusterInBackground, dask_client
from tasks.credentials import signing_identity
from tasks.decisions import rejected
from tasks.iiif import write_iiif
from tasks.lease import Lease
from tasks.model_ref import ModelRef
from tasks.model_resolve import DEFAULT_MODEL_URI, resolve_model
from tasks.restore_report import RestoreSummary, publish_report
from tasks.restore_runs import (
    RestorePlan,
    done_items,
    finish_manifest,
    load_manifests,
    plan_restore,
    previous_version,
    remove_stale_temporaries,
    restore_on_dask,
    sort_items,
)
from tasks.restore_jobs import RestoreJob, load_hints, warm_worker
from tasks.review import write_run_review
from tasks.sources import list_sources
from tasks.state import state_dir
from tasks.storage import absolute

plan = task(plan_restore, name="plan_restore", retries=2, retry_delay_seconds=3, cache_policy=NONE)


def restore_collection(
    source: str,
    dest: str,
    model: str,
    options: dict,
    cluster: ClusterInBackground | None = None,
    dask_address: str | None = None,
    n_workers: int = 2,
    api_ready: Callable[[], None] = lambda: None,
    **flow_options,
) -> RestoreSummary:
    """The command line's way in, its arguments checked and its local `cluster` (if it has one)
    already starting: the model is resolved and the plan made once, the workers load the model while
    the Prefect API finishes starting (`api_ready` waits for it), and the flow runs with what was
    resolved. `options`: the user's colorization options (`ColorizeConfig.from_options`)."""
    source, dest = absolute(source), absolute(dest)
    try:
        ref = resolve_model(model)
        p = RestorePlan.of(source, dest, ref, ColorizeConfig.from_options(read_decode(ref.directory), **options))
        if cluster:
            cluster.warm(functools.partial(warm_worker, ref, p.cfg.size))
        api_ready()
        address = dask_address or (cluster.address if cluster else None)
        return restore_flow(source, dest, model=ref, colorize=p.cfg, dask_address=address, n_workers=n_workers, **flow_options)
    finally:
        if cluster:
            cluster.close()


@flow(name="restore", log_prints=True)
def restore_flow(
    source: str,
    dest: str,
    model: str | ModelRef = DEFAULT_MODEL_URI,
    colorize: ColorizeConfig = ColorizeConfig(),
    batch_size: int = 4,  # images per forward pass: small batches keep the workers evenly loaded on a CPU
    max_pixels: int = ReaderConfig.max_pixels,
    dask_address: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
    review: bool = True,
    only: list[str] | None = None,
    only_rejected: bool = False,
    compare_with: str | None = None,
    credentials: bool = True,
    iiif_rights: str | None = None,
    hints: str | dict | None = None,
) -> RestoreSummary:
    """`model`: a registry URI or package folder (a deployment's text: SOURCE and DEST are checked and
    the model resolved here), or the ModelRef a caller resolved after checking them (the command line).
    `colorize.decode` None (the default) decodes as the model package says. `only` limits the run
    to these content hashes; `only_rejected` to the items curators rejected (`colorize review import`).
    `compare_with` ("previous", or a folder under DEST such as colorizer-v3) writes a page comparing
    this run's model version with that one when the run finishes (the museum-reprocess deployment).
    `credentials`: Content Credentials (C2PA) signed into every output (see tasks/credentials.py).
    `iiif_rights`: the rights statement URI of the run's IIIF manifests (default COLORIZE_IIIF_RIGHTS).
    `hints`: curators' colour hints (`colorize_core.hints`): a file's URL, or the parsed hints. Each
    hinted item's output sits beside the automatic one, named by the hints' id."""
    started = time.time()
    source, dest = absolute(source), absolute(dest)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    p = RestorePlan.of(source, dest, model, colorize) if isinstance(model, ModelRef) else plan(source, dest, model, colorize)
    ref, layout = p.ref, p.layout
    signing = signing_identity(state_dir()) if credentials else None
    job = RestoreJob(source, layout, ref, p.cfg, ReaderConfig(max_pixels), run_id, review, signing, load_hints(hints))
    summary = RestoreSummary(run_id=run_id, model=f"{ref.name} v{ref.version}", outputs=layout.outputs)
    images, _ = list_sources(source)
    summary.seen = len(images)
    if only_rejected:
        only = sorted(set(only or []) | set(rejected(dest)))
    lease = Lease(layout.lease, run_id)
    lease.acquire(
        on_wait=lambda h: get_run_logger().warning(f"waiting: run {h.run_id} (pid {h.pid} on {h.host}) is writing {layout.outputs}")
    )
    try:
        remove_stale_temporaries(layout)
        earlier = load_manifests(layout)
        rows = []
        if images:
            with dask_client(dask_address, n_workers) as client:
                done = done_items(earlier, job)
                rows, todo = sort_items(images, earlier, done, only, job)
                batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
                rows += restore_on_dask(batches, job, client.scheduler.address, done, only, progress)
            remove_stale_temporaries(layout, run_id)  # a worker killed between writing and moving leaves its temporary
        summary.count(rows)
        summary.manifest = finish_manifest(layout, run_id, rows, images)
        if review:
            summary.report = write_run_review(layout, run_id, rows, source, summary.counts(), job.cfg.settings(), ref.exact_uri)
            summary.iiif = write_iiif(layout, run_id, rows, earlier, iiif_rights or os.environ.get("COLORIZE_IIIF_RIGHTS"))[0]
    finally:
        lease.release()
    if compare_with:
        other = previous_version(load_manifests(layout), ref) if compare_with == "previous" else compare_with
        if other:
            summary.comparison = compare_flow(dest, [other, layout.prefix])["page"]
    summary.seconds = time.time() - started
    return publish_report(summary, rows, layout)
