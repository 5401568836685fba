"""The `colorize` command line: each verb checks its arguments, calls one flow and prints.

Heavy libraries (torch, MLflow, Prefect, Dask) are imported inside the verbs that use them, so
`colorize --help` answers at once. Wrong arguments and unreachable services end with one line that
names the thing and the reason (exit status 2, or 1 for a service), nothing created; `--debug` shows
the traceback instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from typing import Optional

import typer

from tasks.state import apply_embedded_defaults, prefect_database_missing, setup_lock, without_flow_heartbeats

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
_debug = False
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "collection")
DEFAULT_MODEL = "models:/colorizer@champion"
ITEMS_FAILED = 3  # exit status of a run that finished with failed items (2: usage error, 1: a service unreachable)


@app.callback()
def main(ctx: typer.Context, debug: bool = typer.Option(False, "--debug", help="show a traceback instead of a one-line error")) -> None:
    """Colorize archival black-and-white photographs at scale."""
    global _debug
    _debug = debug
    home = apply_embedded_defaults()
    if not os.environ.get("PREFECT_API_URL"):  # the temporary API: nobody to read flow heartbeats
        ctx.with_resource(without_flow_heartbeats())
    runs_flows = ctx.invoked_subcommand not in (None, "stack", "train-settings", "image")
    if runs_flows and prefect_database_missing(home) and sys.argv[-1] not in ("--help", "-h"):
        typer.echo(f"Prefect: no server configured; preparing the temporary local API's database in {home} (first run only)", err=True)


def clear_errors(fn):
    """One line and an exit status for the errors a user can act on; a traceback only with --debug."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        from colorize_core.imageio import ImageReadError
        from tasks.checks import ArgumentError, ModelMismatch, ServiceUnavailable

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except (ArgumentError, LookupError, ModelMismatch, ServiceUnavailable, ImageReadError, ValueError, FileNotFoundError) as e:
            if _debug:
                raise
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1 if isinstance(e, ServiceUnavailable) else 2) from None

    return run


def _storage(options: Optional[str]) -> None:
    """`--storage-options` JSON reaches every fsspec call through the environment."""
    if options:
        from tasks.checks import ArgumentError

        try:
            json.loads(options)
        except json.JSONDecodeError as e:
            raise ArgumentError(f"--storage-options is not JSON: {e}") from None
        os.environ["COLORIZE_STORAGE_OPTIONS"] = options


def _show(result) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


def _given(**kw) -> dict:
    """The options the user gave (None means: the config's own default, defined once in its dataclass)."""
    return {k: v for k, v in kw.items() if v is not None}


def _tracking_reachable() -> None:
    from tasks.checks import check_tracking_server

    check_tracking_server(os.environ.get("MLFLOW_TRACKING_URI", ""))


@app.command()
@clear_errors
def preprocess(
    source: str = typer.Argument(..., help="images: local folder, s3://bucket/prefix, any fsspec URL"),
    shards: str = typer.Argument(..., help="where the Lab shards go (any fsspec URL)"),
    size: Optional[int] = typer.Option(None, help="training size (short side, then centre crop) [PreprocessConfig: 256]"),
    val_fraction: Optional[float] = typer.Option(None, help="share of images held out, by content hash [0.1]"),
    rows_per_shard: int = typer.Option(64),
    split_by_folder: bool = typer.Option(False, help="SOURCE/train and SOURCE/val decide the split"),
    dask_address: Optional[str] = typer.Option(None, help="scheduler of an existing Dask cluster"),
    workers: int = typer.Option(2, help="LocalCluster worker processes when no address is given"),
    storage_options: Optional[str] = typer.Option(None, help="fsspec options as JSON"),
) -> None:
    """Decode, validate, resize and convert images to Lab shards in Parquet, on Dask."""
    from colorize_core.shards import PreprocessConfig
    from flows.preprocess import preprocess_flow
    from tasks.checks import check_source, check_url

    _storage(storage_options)
    check_source(source)
    check_url(shards, "shards")
    cfg = PreprocessConfig(**_given(size=size, val_fraction=val_fraction))
    s = preprocess_flow(
        source, shards, cfg, rows_per_shard=rows_per_shard, split_by_folder=split_by_folder, dask_address=dask_address, n_workers=workers
    )
    _show({k: v for k, v in s.__dict__.items() if k != "shards"} | {"shards": len(s.shards)})


@app.command()
@clear_errors
def bins(
    shards: str = typer.Argument(..., help="Lab shards written by `colorize preprocess`"),
    out: str = typer.Option(..., help="bin-set file to write (.npz), with .json, .gamut.png, .prior.png beside it"),
    method: str = typer.Option("grid", help="grid (in-gamut cells of the data) | kmeans | canonical (the 313 reference bins)"),
    k: Optional[int] = typer.Option(None, help="K-Means clusters [BinConfig: 313]"),
    grid_size: Optional[int] = typer.Option(None, help="[BinConfig: 10]"),
    lam: Optional[float] = typer.Option(None, help="uniform mix of the rebalancing [RebalanceConfig: 0.5]"),
    sigma: Optional[float] = typer.Option(None, help="Gaussian smoothing of the prior [RebalanceConfig: 5]"),
    dask_address: Optional[str] = typer.Option(None),
    workers: int = typer.Option(2),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Estimate the ab bins, their prior and rebalancing weights from the training shards."""
    from colorize_core.bins import BinConfig
    from colorize_core.rebalance import RebalanceConfig
    from flows.bins import bins_flow
    from tasks.checks import check_source, check_url

    _storage(storage_options)
    check_source(shards, "shards")
    check_url(out, "output")
    cfg = BinConfig(method=method, **_given(k=k, grid_size=grid_size))
    _show(bins_flow(shards, out, cfg, RebalanceConfig(**_given(lam=lam, sigma=sigma)), dask_address=dask_address, n_workers=workers))


@app.command(
    epilog="Every training setting is a field of TrainConfig, set with --set KEY=VALUE (repeatable) or a JSON --config; "
    "run `colorize train-settings` for the list with defaults."
)
@clear_errors
def train(
    shards: str = typer.Argument(...),
    bins: str = typer.Option(..., help="bin set from `colorize bins`"),
    arch: str = typer.Option("small", help="eccv16 | medium | small | tiny"),
    config: Optional[str] = typer.Option(None, help="JSON file of TrainConfig fields (nested sections as objects)"),
    set_: list[str] = typer.Option([], "--set", help="KEY=VALUE on TrainConfig, e.g. steps=8000, augment.crop=176, gan.weight=0.01"),
    epochs: Optional[float] = typer.Option(None, help="instead of steps: passes over the training rows"),
    model_name: str = typer.Option("colorizer", help="registered model name"),
    checkpoint_dir: Optional[str] = typer.Option(None),
    resume: Optional[str] = typer.Option(None, help="checkpoint to continue from, exactly"),
    init_model: Optional[str] = typer.Option(None, help="fine-tune this model (URI or package folder) instead of starting from scratch"),
    nproc: int = typer.Option(1, help="data-parallel processes (torchrun)"),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Train a colorizer, track it in MLflow and register it."""
    from colorize_core.models import ModelConfig
    from flows.train import train_flow
    from tasks.checks import check_source
    from tasks.train import train_config

    _storage(storage_options)
    check_source(shards, "shards")
    check_source(bins, "bin set")
    _tracking_reachable()
    cfg = train_config(config, set_, epochs, shards, nproc)
    model = ModelConfig(arch=arch, hint_input=cfg.hints.enabled)
    _show(
        train_flow(
            shards,
            bins,
            model,
            cfg,
            model_name=model_name,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            init_model=init_model,
            nproc=nproc,
        )
    )


@app.command("train-settings")
def train_settings() -> None:
    """Every TrainConfig field with its default, as `colorize train --set` takes it."""
    from colorize_core.config import describe
    from colorize_core.train import TrainConfig

    typer.echo("\n".join(describe(TrainConfig)))


def _colorize_config(decode, temperature, top_k, upsample, size, uncertainty=False, model_dir: str | None = None):
    """The ColorizeConfig of the options given: decode None keeps the model package's own decode
    (fitted on validation data); a temperature or k alone adjusts the package's decode."""
    import dataclasses

    from colorize_core.colorize import ColorizeConfig
    from colorize_core.decoding import DecodeConfig
    from colorize_core.package import read_decode
    from colorize_core.upsample import UpsampleConfig

    tweaks = _given(temperature=temperature, top_k=top_k)
    if decode is not None:
        dec = DecodeConfig(method=decode, **tweaks)
    elif tweaks and model_dir:
        dec = dataclasses.replace(read_decode(model_dir), **tweaks)
    else:
        dec = None
    return ColorizeConfig(decode=dec, upsample=UpsampleConfig(**_given(method=upsample)), uncertainty=uncertainty, **_given(size=size))


_MODEL = typer.Option(DEFAULT_MODEL, help="registry URI (models:/name@alias, models:/name/N) or a package folder")
_DECODE = typer.Option(None, help="annealed-mean | argmax | top-k | mean | confident [default: the model package's own]")
_T = typer.Option(None, help="temperature T (annealed mean, top-k, confident)")
_K = typer.Option(None, help="bins kept by top-k")
_UPSAMPLE = typer.Option(None, help="guided (colour follows the original's edges) | bilinear [guided]")
_SIZE = typer.Option(None, help="the network's working size [256]")
_CREDENTIALS = typer.Option(True, help="sign Content Credentials (C2PA) into every output")


@app.command()
@clear_errors
def restore(
    source: str = typer.Argument(..., help="collection: local folder or s3://bucket/prefix"),
    dest: str = typer.Argument(..., help="where outputs, manifests and reports go"),
    model: str = _MODEL,
    decode: Optional[str] = _DECODE,
    temperature: Optional[float] = _T,
    top_k: Optional[int] = _K,
    upsample: Optional[str] = _UPSAMPLE,
    size: Optional[int] = _SIZE,
    uncertainty: bool = typer.Option(False, help="also write an uncertainty map (.uncertainty.png) per image"),
    batch_size: Optional[int] = typer.Option(None, help="images per forward pass [the restore flow's: 4]"),
    dask_address: Optional[str] = typer.Option(None),
    workers: int = typer.Option(2),
    review: bool = typer.Option(True, help="thumbnails, previews and the run's review page under DEST/_reports/<run>/"),
    only_rejected: bool = typer.Option(False, help="only the items curators rejected (decisions imported with `colorize review import`)"),
    compare_with: Optional[str] = typer.Option(
        None, help="when done, compare with this version's outputs in DEST (colorizer-v3, or 'previous')"
    ),
    credentials: bool = _CREDENTIALS,
    hints: Optional[str] = typer.Option(
        None,
        help="curators' colour hints (JSON): a path, any fsspec URL, or 'imported' (the last `review import` into DEST); hinted outputs go beside the automatic ones",
    ),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Colorize a whole collection; exit status 0 when every item is done, 3 when some failed (they are
    listed, and recorded in the manifest), 2 for a usage error, 1 when a service is unreachable."""
    _storage(storage_options)
    s = _restore(source, dest, model, (decode, temperature, top_k, upsample, size, uncertainty), batch_size,
                 dask_address, workers, review, only_rejected=only_rejected, compare_with=compare_with, credentials=credentials,
                 hints=_hints(hints, dest))  # fmt: skip
    _report(s)
    raise typer.Exit(ITEMS_FAILED if s.failed else 0)


def _hints(url: Optional[str], dest: str):
    """The hints file read and checked before anything starts (a HintsError is a usage error);
    `imported`: the hints last imported into DEST with `colorize review import`."""
    if url is None:
        return None
    from tasks.checks import ArgumentError, check_source
    from tasks.decisions import latest_hints
    from tasks.restore_worker import load_hints

    if url == "imported":
        url = latest_hints(dest)
        if url is None:
            raise ArgumentError(f"--hints imported: no hints were imported into {dest} (colorize review import HINTS.json DEST)")

    check_source(url, "hints file")
    return load_hints(url)


def _restore(source, dest, model, cfg_args, batch_size=None, dask_address=None, workers=2, review=True, **flow_options):
    """Checks and resolves once (`plan_restore`); then the local cluster starts (and loads the model on
    its workers) while the flow's Prefect API starts, instead of one after the other."""
    _tracking_reachable()
    api = _PrefectApiInBackground()
    from flows.restore import restore_flow
    from tasks.checks import check_dest, check_source
    from tasks.cluster import ClusterInBackground
    from tasks.registry import resolve_model
    from tasks.restore_runs import RestorePlan
    from tasks.restore_worker import warm_worker
    from tasks.storage import any_file

    check_source(source)
    check_dest(source, dest)
    ref = resolve_model(model)
    plan = RestorePlan.of(source, dest, ref, _colorize_config(*cfg_args, model_dir=ref.directory))
    own_cluster = not (dask_address or os.environ.get("COLORIZE_DASK_ADDRESS")) and any_file(source)
    background = ClusterInBackground(workers, functools.partial(warm_worker, ref, plan.cfg.size)) if own_cluster else None
    try:
        address = dask_address or (background.address if background else None)
        api.join()
        return restore_flow(
            source,
            dest,
            model=plan.ref,
            colorize=plan.cfg,
            dask_address=address,
            n_workers=workers,
            review=review,
            **_given(batch_size=batch_size),
            **flow_options,
        )
    finally:
        if background:
            background.close()


class _PrefectApiInBackground:
    """The temporary Prefect API (when no server is configured) starts on a thread now, its start-up
    overlapping ours; the flow finds it running. `join` waits for it and raises what the start raised.
    When we fail first, Prefect's exit hook stops the half-started server under the thread; what the
    thread then raises is kept, never printed, since nobody joins it."""

    def __init__(self) -> None:
        import threading

        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, daemon=True, name="prefect-api-start")
        self.thread.start()

    def _start(self) -> None:
        try:
            if not os.environ.get("PREFECT_API_URL"):
                from prefect.server.api.server import SubprocessASGIServer

                first = prefect_database_missing(apply_embedded_defaults())
                with setup_lock("prefect-database") if first else contextlib.nullcontext():  # its migrations run once
                    SubprocessASGIServer().start()
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self.error = e

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _report(s) -> None:
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
def image(
    src: str = typer.Argument(..., help="one image"),
    out: str = typer.Argument(..., help="the colorized image"),
    model: str = _MODEL,
    decode: Optional[str] = _DECODE,
    temperature: Optional[float] = _T,
    top_k: Optional[int] = _K,
    upsample: Optional[str] = _UPSAMPLE,
    size: Optional[int] = _SIZE,
    credentials: bool = _CREDENTIALS,
) -> None:
    """Colorize one file with the same model, decode and path as `restore`, without a cluster or a flow."""
    from tasks.checks import check_source, check_url

    check_source(src, "input")
    check_url(out, "output")
    _tracking_reachable()
    from tasks.credentials import signing_identity
    from tasks.registry import resolve_model
    from tasks.restore_worker import colorize_one
    from tasks.state import state_dir

    ref = resolve_model(model)
    signing = signing_identity(state_dir()) if credentials else None
    colorize_one(src, out, ref, _colorize_config(decode, temperature, top_k, upsample, size, model_dir=ref.directory), signing)
    typer.echo(f"{out} (model {ref.name} v{ref.version})")


@app.command("import-weights")
@clear_errors
def import_weights(
    checkpoint: str = typer.Argument(..., help="a released state dict (.pth) of the ECCV16 or the SIGGRAPH17 layout"),
    name: str = typer.Option("colorizer", help="registered model name"),
    alias: Optional[str] = typer.Option(None, help="alias to point at the new version (e.g. champion)"),
) -> None:
    """Register a reference checkpoint (ECCV16, or SIGGRAPH17 with hint input), with the canonical 313
    bins, as a new model version."""
    from tasks.checks import check_source
    from tasks.registry import import_reference_checkpoint

    check_source(checkpoint, "checkpoint")
    version = import_reference_checkpoint(checkpoint, name, alias)
    typer.echo(f"models:/{name}/{version}" + (f"  (alias {alias}: models:/{name}@{alias})" if alias else ""))


@app.command()
@clear_errors
def compare(
    dest: str = typer.Argument(..., help="a restoration destination holding outputs of both versions"),
    models: list[str] = typer.Option(
        ..., "--models", help="the two versions, as their folders under DEST: --models colorizer-v3 --models colorizer-v4"
    ),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """A page of the items both versions colorized, side by side, most changed first."""
    from flows.review import compare_flow
    from tasks.checks import check_source
    from tasks.review import rows_of_versions

    _storage(storage_options)
    check_source(dest, "destination")
    rows_of_versions(dest, models)  # an unknown version is a one-line error before any flow starts
    out = compare_flow(dest, models)
    typer.echo(f"{out['items']} items compared: {out['page']}")


@app.command()
@clear_errors
def verify(
    target: str = typer.Argument(..., help="one output file, or a restoration destination (every output under it)"),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Read the Content Credentials of outputs: valid / untrusted / invalid / missing per item, with the
    model and version each names; only signers of the archive's trust anchors are valid
    (COLORIZE_C2PA_TRUST_ANCHORS). Exit status 1 when any item is not valid."""
    from flows.verify import verify_flow
    from tasks.checks import check_source

    _storage(storage_options)
    check_source(target, "target")
    out = verify_flow(target)
    width = max([len(v.path) for v in out["verdicts"]] + [4])
    typer.echo(f"{'item':{width}s}  {'status':8s} model")
    for v in out["verdicts"]:
        typer.echo(
            f"{v.path:{width}s}  {v.status:8s} {v.model or '-'} {('v' + v.model_version) if v.model_version else ''} {v.detail}".rstrip()
        )
    typer.echo(", ".join(f"{n} {s}" for s, n in out["counts"].items()) + (f"; recorded in {out['recorded']}" if out["recorded"] else ""))
    raise typer.Exit(0 if out["counts"]["valid"] == len(out["verdicts"]) else 1)


review_app = typer.Typer(help="Curators' decisions from review pages.")
app.add_typer(review_app, name="review")


@review_app.command("serve")
@clear_errors
def review_serve(
    dest: str = typer.Argument(..., help="a restoration destination (its review pages are served)"),
    port: int = typer.Option(8765, help="port on 127.0.0.1 (0: any free one)"),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Serve DEST's review pages on 127.0.0.1 with their colour tool: hints placed on an item redraw its
    preview by the run's own model and settings. Ctrl-C stops it."""
    from tasks.checks import check_source
    from tasks.review_server import serve
    from tasks.storage import filesystem, join

    _storage(storage_options)
    check_source(dest, "destination")
    server = serve(dest, port)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    fs, root = filesystem(join(dest, "_reports"))
    pages = sorted(fs.glob(join(root, "*", "index.html"))) if fs.exists(root) else []
    for page in pages:
        typer.echo(f"{base}/_reports/{page.rsplit('/', 2)[-2]}/index.html")
    typer.echo(f"serving {dest} at {base} (Ctrl-C stops)" if pages else f"serving {dest} at {base}: it has no review page yet")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@review_app.command("import")
@clear_errors
def review_import(
    decisions: str = typer.Argument(..., help="decisions (JSON or CSV) or hints (JSON) exported from a review page"),
    dest: str = typer.Argument(..., help="the destination they are about"),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Record curators' decisions as Parquet under DEST/_decisions/ (`restore --only-rejected` reads them),
    or their colour hints under DEST/_hints/ (`restore --hints imported` reads the latest)."""
    from flows.review import import_decisions_flow
    from tasks.checks import check_source

    _storage(storage_options)
    check_source(decisions, "decisions file")
    check_source(dest, "destination")
    out = import_decisions_flow(decisions, dest)
    if "hints" in out:
        typer.echo(f"hints for {out['hints']} items recorded: {out['recorded']} (colorize restore SOURCE DEST --hints imported)")
    else:
        typer.echo(f"{out['decisions']} decisions recorded: {out['recorded']}")


stack_app = typer.Typer(help="The local stack: Prefect server, MLflow server, SeaweedFS S3, Dask scheduler and 2 workers.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up_cmd(
    production: bool = typer.Option(
        False, help="the production stack: PostgreSQL, S3 artifacts, authentication on every service, Dask over TLS"
    ),
    prefect_port: int = typer.Option(4200),
    mlflow_port: int = typer.Option(5000),
    s3_port: int = typer.Option(8333),
    dask_port: int = typer.Option(8786),
    postgres_port: int = typer.Option(5432, help="--production only"),
    restore_from: Optional[str] = typer.Option(None, help="--production only: a folder of `colorize stack backup` to start from"),
) -> None:
    """Start every service on 127.0.0.1 and print the environment for the shell (eval "$(colorize stack up)")."""
    from infra.stack.local import StackPorts, exports, stack_dir, stack_up
    from tasks.state import state_dir

    if production:
        from pathlib import Path

        from infra.stack.production import Ports, production_up

        ports = Ports(prefect_port, mlflow_port, s3_port, dask_port, postgres_port)
        info = production_up(stack_dir(state_dir(), True), ports, Path(restore_from) if restore_from else None)
    else:
        info = stack_up(state_dir(), StackPorts(prefect_port, mlflow_port, s3_port, dask_port))
    for name, s in info["services"].items():
        typer.echo(f"# {name}: pid {s['pid']}, {s['url']}, log {s['log']}", err=True)
    typer.echo(exports(info["env"]))


@stack_app.command("backup")
def stack_backup_cmd(
    folder: str = typer.Argument(..., help="where the database dumps go"),
    postgres_port: int = typer.Option(5432),
) -> None:
    """Dump the production stack's databases (Prefect deployments and runs; MLflow runs, registry,
    aliases, users); bring them back with `stack up --production --restore-from FOLDER`."""
    from pathlib import Path

    from infra.stack.local import stack_dir
    from infra.stack.production import Ports, backup
    from tasks.state import state_dir

    for path in backup(stack_dir(state_dir(), True), Ports(postgres=postgres_port), Path(folder)):
        typer.echo(path)


@stack_app.command("down")
def stack_down_cmd(production: bool = typer.Option(False, help="the production stack")) -> None:
    """Stop every service of the stack by PID."""
    from infra.stack.local import stack_down
    from tasks.state import state_dir

    stopped = stack_down(state_dir(), production)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no stack was running")


@stack_app.command("status")
def stack_status_cmd(production: bool = typer.Option(False, help="the production stack")) -> None:
    from infra.stack.local import stack_status
    from tasks.state import state_dir

    for name, alive in stack_status(state_dir(), production).items():
        typer.echo(f"{name}: {'running' if alive else 'stopped'}")


@app.command()
@clear_errors
def evaluate(
    shards: str = typer.Argument(..., help="shards whose validation split is scored"),
    model: str = _MODEL,
    limit: Optional[int] = typer.Option(None, help="at most this many validation images"),
    degraded: bool = typer.Option(False, help="also score a degraded copy of the validation images (archival-scan L)"),
    fit_decoder: bool = typer.Option(False, help="fit the confident decode on these images and register the model with it"),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """AuC (plain, rebalanced), PSNR, colourfulness of a model under each decode, beside the gray and
    prior-mean baselines; with --fit-decoder, the fitted decode becomes the model's default."""
    from flows.evaluate import evaluate_flow
    from tasks.checks import check_source

    _storage(storage_options)
    check_source(shards, "shards")
    _tracking_reachable()
    out = evaluate_flow(model, shards, limit, degraded=degraded, fit_decoder=fit_decoder)
    typer.echo(evaluation_table(out["results"]))
    if out.get("fitted"):
        typer.echo(f"fitted decode {json.dumps(out['fitted']['decode'])}: registered as {out['fitted']['model']}")


def evaluation_table(results: dict[str, dict]) -> str:
    head = f"{'':30s} {'AuC':>7s} {'AuC rb':>7s} {'PSNR':>6s} {'colour':>7s} {'delta C':>8s} {'|dC|':>6s}"
    lines = [head]
    for k, v in results.items():
        lines.append(
            f"{k:30s} {v['auc']:7.4f} {v['auc_rebalanced']:7.4f} {v['psnr']:6.2f} {v['colourfulness']:7.1f} "
            f"{v['delta_colourfulness']:+8.1f} {v.get('abs_delta_colourfulness', float('nan')):6.1f}"
        )
    return "\n".join(lines)


@app.command()
@clear_errors
def promote(
    model: str = typer.Option("colorizer", help="registered model name"),
    candidate: str = typer.Option(..., help="candidate version"),
    shards: Optional[str] = typer.Option(None, help="validation shards (default: the candidate's training shards)"),
    alias: str = typer.Option("champion"),
    auc_tolerance: Optional[float] = typer.Option(None, help="plain AuC may fall by this much [PromotionPolicy: 0.01]"),
    psnr_tolerance: Optional[float] = typer.Option(None, help="dB [PromotionPolicy: 0.5]"),
    colourfulness_tolerance: Optional[float] = typer.Option(None, help="|delta colourfulness| may grow by this much [PromotionPolicy: 2]"),
) -> None:
    """Move the champion alias to the candidate only when it is at least as good (exit 1 when refused)."""
    from flows.evaluate import promote_flow
    from tasks.evaluate import PromotionPolicy

    _tracking_reachable()
    policy = PromotionPolicy(
        **_given(auc_tolerance=auc_tolerance, psnr_tolerance=psnr_tolerance, colourfulness_tolerance=colourfulness_tolerance)
    )
    d = promote_flow(model, candidate, shards=shards, alias=alias, policy=policy)
    typer.echo(f"{model} v{candidate}: {'promoted to ' + alias if d['promoted'] else 'refused'} ({d['reason']})")
    raise typer.Exit(0 if d["promoted"] else 1)


@app.command()
@clear_errors
def pipeline(
    source: str = typer.Argument(..., help="training photos (fsspec URL)"),
    workdir: Optional[str] = typer.Option(None, help="where shards and bins go (default: <state>/pipeline)"),
    method: str = typer.Option("grid"),
    arch: str = typer.Option("small"),
    config: Optional[str] = typer.Option(None, help="JSON file of TrainConfig fields"),
    set_: list[str] = typer.Option([], "--set", help="KEY=VALUE on TrainConfig (see `colorize train-settings`)"),
    split_by_folder: bool = typer.Option(False),
    model_name: str = typer.Option("colorizer"),
    init_model: Optional[str] = typer.Option(None, help="fine-tune this model (URI or package folder; needs --method canonical)"),
    dask_address: Optional[str] = typer.Option(None),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """preprocess -> bins -> train -> evaluate -> promote, skipping steps whose outputs are current."""
    from colorize_core.models import ModelConfig
    from flows.pipeline import pipeline_flow
    from tasks.checks import check_source
    from tasks.train import train_config

    _storage(storage_options)
    check_source(source)
    _tracking_reachable()
    cfg = train_config(config, set_, None, "", 1)
    _show(
        pipeline_flow(
            source,
            workdir=workdir,
            method=method,
            model=ModelConfig(arch=arch),
            train=cfg,
            split_by_folder=split_by_folder,
            model_name=model_name,
            init_model=init_model,
            dask_address=dask_address,
        )  # fmt: skip
    )


@app.command()
@clear_errors
def run(
    source: str = typer.Option(SAMPLES, help="collection to restore (default: the sample collection)"),
    dest: Optional[str] = typer.Option(None, help="default: <state folder>/restored"),
) -> None:
    """The main job on embedded defaults: restore a collection with the champion model (the bundled
    default model when the registry has none), local folders as object storage, MLflow on SQLite,
    Prefect without a server."""
    from tasks.state import state_dir

    s = _restore(source, dest or str(state_dir() / "restored"), DEFAULT_MODEL, (None, None, None, None, None, False))
    _report(s)
    raise typer.Exit(ITEMS_FAILED if s.failed else 0)


if __name__ == "__main__":
    app()
