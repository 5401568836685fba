"""Restore a collection, colorize one image, the main job on embedded defaults."""

from __future__ import annotations

import contextlib
from typing import Optional

import typer

from cli import options as opt
from cli.common import DEFAULT_MODEL, ITEMS_FAILED, app, clear_errors, given, show, tracking_reachable
from tasks.state import SAMPLE_COLLECTION, apply_embedded_defaults, without_flow_heartbeats



@app.command()
@clear_errors
@opt.look_options
def restore(
    source: str = typer.Argument(..., help="collection: local folder or s3://bucket/prefix"),
    dest: str = typer.Argument(..., help="where outputs, manifests and reports go"),
    model: str = opt.MODEL,
    engine: Optional[str] = opt.ENGINE,
    uncertainty: bool = typer.Option(False, help="also write an uncertainty map (.uncertainty.png) per image"),
    batch_size: Optional[int] = typer.Option(None, help="images per forward pass", show_default="4"),
    dask_address: Optional[str] = opt.DASK,
    workers: int = opt.WORKERS,
    review: bool = typer.Option(True, help="thumbnails, previews and the run's review page under DEST/_reports/<run>/"),
    only_rejected: bool = typer.Option(False, help="only the items curators rejected (decisions imported with `colorize review import`)"),
    compare_with: Optional[str] = typer.Option(
        None, help="when done, compare with this version's outputs in DEST: a model version (colorizer/3) or 'previous'"
    ),
    credentials: bool = opt.CREDENTIALS,
    hints: Optional[str] = typer.Option(
        None,
        help="curators' colour hints (JSON): a path, any fsspec URL, or 'imported' (the last `review import` into DEST); hinted outputs go beside the automatic ones",
    ),
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
    look: Optional[dict] = None,  # the look options given, from opt.look_options
) -> None:
    """Colorize a whole collection; exit status 0 when every item is done, 3 when some failed (they are
    listed, and recorded in the manifest), 2 for a usage error, 1 when a service is unreachable."""
    if compare_with not in (None, "previous"):
        from tasks.model_names import output_folder

        compare_with = output_folder(compare_with, "--compare-with")
    s = _restore(source, dest, model, look | {"uncertainty": uncertainty}, batch_size,
                 dask_address, workers, review, only_rejected=only_rejected, compare_with=compare_with, credentials=credentials,
                 hints=_hints(hints, dest))  # fmt: skip
    _report(s, as_json)
    raise typer.Exit(ITEMS_FAILED if s.failed else 0)


def _hints(url: Optional[str], dest: str):
    """The hints file read and checked before anything starts (a HintsError is a usage error);
    `imported`: the hints last imported into DEST with `colorize review import`."""
    if url is None:
        return None
    from tasks.checks import ArgumentError, check_source
    from tasks.decisions import latest_hints
    from tasks.restore_jobs import load_hints

    if url == "imported":
        url = latest_hints(dest)
        if url is None:
            raise ArgumentError(f"--hints imported: no hints were imported into {dest} (colorize review import HINTS.json DEST)")

    check_source(url, "hints file")
    return load_hints(url)


def _restore(source, dest, model, options: dict, batch_size=None, dask_address=None, workers=2, review=True, **flow_options):
    """Wrong arguments are found first; then the temporary Prefect API (tasks.temporary_api) and the
    local cluster start, its workers importing the restore worker, both while the flow module loads
    and the model is resolved (flows.restore.restore_collection)."""
    from tasks.checks import check_dest, check_source
    from tasks.cluster import cluster_for
    from tasks.temporary_api import start_temporary_api

    check_source(source)
    check_dest(source, dest)
    tracking_reachable()
    api = start_temporary_api(apply_embedded_defaults())
    with without_flow_heartbeats(api.url) if api else contextlib.nullcontext():
        cluster = cluster_for(source, dask_address, workers, preload=("tasks.restore_worker",))
        from flows.restore import restore_collection

        return restore_collection(source, dest, model, options, cluster, dask_address, workers, api.wait if api else lambda: None,
                                  review=review, **given(batch_size=batch_size), **flow_options)  # fmt: skip


def _report(s, as_json: bool = False) -> None:
    """The run's summary: what was done, where the results are, and each failed item with its reason."""
    if as_json:
        import dataclasses

        return show(dataclasses.asdict(s), True)
    typer.echo(f"{s.done} colorized, {s.skipped} already done, {s.failed} failed, with {s.model}")
    typer.echo(f"results:       {s.outputs}")
    typer.echo(f"manifest:      {s.manifest}")
    if s.report:
        typer.echo(f"review page:   {s.report}")
    if s.iiif:
        typer.echo(f"IIIF manifest: {s.iiif}")
    if s.contact_sheet:
        typer.echo(f"contact sheet: {s.contact_sheet}")
    if s.comparison:
        typer.echo(f"comparison:    {s.comparison}")
    for source, reason in s.failures:
        typer.echo(f"failed: {source}: {reason}", err=True)


@app.command()
@clear_errors
@opt.look_options
def image(
    src: str = typer.Argument(..., help="one image"),
    out: str = typer.Argument(..., help="the colorized image"),
    model: str = opt.MODEL,
    engine: Optional[str] = opt.ENGINE,
    credentials: bool = opt.CREDENTIALS,
    as_json: bool = opt.JSON,
    look: Optional[dict] = None,  # the look options given, from opt.look_options
) -> None:
    """Colorize one file with the same model, decode and path as `restore`, without a cluster or a flow."""
    from tasks.checks import check_source, check_url

    check_source(src, "input")
    check_url(out, "output")
    tracking_reachable()
    from tasks.restore_worker import colorize_one

    ref = colorize_one(src, out, model, look, credentials)
    result = {"output": out, "model": f"models:/{ref.name}/{ref.version}", "sha256": ref.sha256}
    show(result, as_json, lambda r: f"{out} (model {r['model']})")


@app.command()
@clear_errors
def run(
    source: str = typer.Option(str(SAMPLE_COLLECTION), help="collection to restore", show_default="the sample collection"),
    dest: Optional[str] = typer.Option(None, help="where the results go", show_default="<state>/restored"),
    as_json: bool = opt.JSON,
) -> None:
    """The main job on embedded defaults: restore a collection with the champion model (the bundled
    default model when the registry has none), local folders as object storage, MLflow on SQLite,
    Prefect without a server."""
    from tasks.state import state_dir

    s = _restore(source, dest or str(state_dir() / "restored"), DEFAULT_MODEL, {})
    _report(s, as_json)
    raise typer.Exit(ITEMS_FAILED if s.failed else 0)
