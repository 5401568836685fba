"""The `colorize` command line: one entry point, a subcommand per flow."""

from __future__ import annotations

import json
import os
from typing import Optional

import typer

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


def _storage(options: Optional[str]) -> None:
    """`--storage-options` JSON reaches every fsspec call through the environment."""
    if options:
        json.loads(options)
        os.environ["COLORIZE_STORAGE_OPTIONS"] = options


def _show(result) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@app.callback()
def main() -> None:
    """Colorize archival black-and-white photographs at scale."""


@app.command()
def preprocess(
    source: str = typer.Argument(..., help="images: local folder, s3://bucket/prefix, any fsspec URL"),
    shards: str = typer.Argument(..., help="where the Lab shards go (any fsspec URL)"),
    size: int = typer.Option(256, help="training size (short side, then centre crop)"),
    val_fraction: float = typer.Option(0.1, help="share of images held out, by content hash"),
    rows_per_shard: int = typer.Option(64),
    split_by_folder: bool = typer.Option(False, help="SOURCE/train and SOURCE/val decide the split"),
    dask_address: Optional[str] = typer.Option(None, help="scheduler of an existing Dask cluster"),
    workers: int = typer.Option(2, help="LocalCluster worker processes when no address is given"),
    storage_options: Optional[str] = typer.Option(None, help="fsspec options as JSON"),
) -> None:
    """Decode, validate, resize and convert images to Lab shards in Parquet, on Dask."""
    from flows.preprocess import preprocess_flow

    _storage(storage_options)
    s = preprocess_flow(
        source,
        shards,
        size=size,
        val_fraction=val_fraction,
        rows_per_shard=rows_per_shard,
        split_by_folder=split_by_folder,
        dask_address=dask_address,
        n_workers=workers,
    )
    _show({k: v for k, v in s.__dict__.items() if k != "shards"} | {"shards": len(s.shards)})


@app.command()
def bins(
    shards: str = typer.Argument(..., help="Lab shards written by `colorize preprocess`"),
    out: str = typer.Option(..., help="bin-set file to write (.npz), with .json, .gamut.png, .prior.png beside it"),
    method: str = typer.Option("grid", help="grid (in-gamut cells of the data) | kmeans | canonical (the 313 reference bins)"),
    k: int = typer.Option(313, help="K-Means clusters"),
    grid_size: int = typer.Option(10),
    lam: float = typer.Option(0.5, help="uniform mix of the rebalancing"),
    sigma: float = typer.Option(5.0, help="Gaussian smoothing of the prior"),
    dask_address: Optional[str] = typer.Option(None),
    workers: int = typer.Option(2),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Estimate the ab bins, their prior and rebalancing weights from the training shards."""
    from flows.bins import bins_flow

    _storage(storage_options)
    _show(
        bins_flow(shards, out, method=method, k=k, grid_size=grid_size, lam=lam, sigma=sigma, dask_address=dask_address, n_workers=workers)
    )


@app.command(
    epilog="Every training setting is a field of TrainConfig, set with --set KEY=VALUE (repeatable) or a JSON --config; "
    "run `colorize train-settings` for the list with defaults."
)
def train(
    shards: str = typer.Argument(...),
    bins: str = typer.Option(..., help="bin set from `colorize bins`"),
    arch: str = typer.Option("small", help="eccv16 | small | tiny"),
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
    from tasks.train import train_config

    _storage(storage_options)
    cfg = _checked(lambda: train_config(config, set_, epochs, shards, nproc))
    model = _checked(lambda: ModelConfig(arch=arch))
    _show(
        train_flow(
            shards, bins, model, cfg, model_name=model_name, checkpoint_dir=checkpoint_dir, resume=resume, init_model=init_model, nproc=nproc
        )
    )


@app.command("train-settings")
def train_settings() -> None:
    """Every TrainConfig field with its default, as `colorize train --set` takes it."""
    from colorize_core.config import describe
    from colorize_core.train import TrainConfig

    typer.echo("\n".join(describe(TrainConfig)))


def _checked(make):
    """A configuration error ends with one line and exit status 2."""
    try:
        return make()
    except (ValueError, TypeError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "collection")


def _restore_options():
    return dict(
        model=typer.Option("models:/colorizer@champion", help="registry URI (models:/name@alias, models:/name/N) or a package folder"),
        decode=typer.Option("annealed-mean", help="annealed-mean | argmax | top-k | mean"),
        temperature=typer.Option(0.38, help="annealing temperature T"),
        top_k=typer.Option(5, help="bins kept by top-k"),
        size=typer.Option(256, help="the network's working size"),
    )


_O = _restore_options()


@app.command()
def restore(
    source: str = typer.Argument(..., help="collection: local folder or s3://bucket/prefix"),
    dest: str = typer.Argument(..., help="where outputs, manifests and reports go"),
    model: str = _O["model"],
    decode: str = _O["decode"],
    temperature: float = _O["temperature"],
    top_k: int = _O["top_k"],
    size: int = _O["size"],
    uncertainty: bool = typer.Option(False, help="also write an uncertainty map (.uncertainty.png) per image"),
    batch_size: int = typer.Option(8, help="images per forward pass"),
    dask_address: Optional[str] = typer.Option(None),
    workers: int = typer.Option(2),
    storage_options: Optional[str] = typer.Option(None),
) -> None:
    """Colorize a whole collection; the exit status is the number of failed items (at most 100)."""
    from flows.restore import restore_flow

    _storage(storage_options)
    s = _guarded(
        restore_flow,
        source,
        dest,
        model=model,
        decode=decode,
        temperature=temperature,
        top_k=top_k,
        size=size,
        uncertainty=uncertainty,
        batch_size=batch_size,
        dask_address=dask_address,
        n_workers=workers,
    )
    _report(s)
    raise typer.Exit(min(s.failed, 100))


def _guarded(flow, *args, **kwargs):
    """Runs a flow; a missing model or bad option ends with its message, not a traceback."""
    try:
        return flow(*args, **kwargs)
    except (LookupError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _report(s) -> None:
    typer.echo(f"{s.done} colorized, {s.skipped} already done, {s.failed} failed, with {s.model}")
    typer.echo(f"results:       {s.outputs}")
    typer.echo(f"manifest:      {s.manifest}")
    if s.contact_sheet:
        typer.echo(f"contact sheet: {s.contact_sheet}")
    for source, reason in s.failures:
        typer.echo(f"failed: {source}: {reason}", err=True)


@app.command()
def image(
    src: str = typer.Argument(..., help="one image"),
    out: str = typer.Argument(..., help="the colorized image"),
    model: str = _O["model"],
    decode: str = _O["decode"],
    temperature: float = _O["temperature"],
    top_k: int = _O["top_k"],
    size: int = _O["size"],
) -> None:
    """Colorize one file with the same model and decode options as `restore`."""
    import torch

    from colorize_core.imageio import ImageReadError, decode_image
    from colorize_core.restore import RestoreConfig, encode_output, join_full_resolution, network_input, predict_small, provenance
    from tasks.registry import resolve_model
    from tasks.storage import atomic_write, read_bytes

    cfg = RestoreConfig(method=decode, temperature=temperature, top_k=top_k, size=size)
    ref = resolve_model(model)
    from colorize_core.package import load_package

    pkg = load_package(ref.directory)
    try:
        img = decode_image(read_bytes(src), src)
    except ImageReadError as e:
        typer.echo(f"cannot colorize {e}", err=True)
        raise typer.Exit(1) from None
    ab, _ = predict_small(pkg.model, torch.from_numpy(network_input(img, cfg.size))[None, None], pkg.model.centres, cfg, bf16=False)
    rgb = join_full_resolution(img, ab[0], cfg.strip_rows)
    atomic_write(out, encode_output(rgb, img, provenance(ref.name, ref.version, cfg)))
    typer.echo(f"{out} (model {ref.name} v{ref.version})")


@app.command("import-weights")
def import_weights(
    checkpoint: str = typer.Argument(..., help="the released ECCV16 state dict (.pth)"),
    name: str = typer.Option("colorizer", help="registered model name"),
    alias: Optional[str] = typer.Option(None, help="alias to point at the new version (e.g. champion)"),
) -> None:
    """Register a reference ECCV16 checkpoint, with the canonical 313 bins, as a new model version."""
    import mlflow
    import torch

    from colorize_core.bins import canonical_bins
    from colorize_core.models import Colorizer, ModelConfig, check_reference_checkpoint
    from colorize_core.package import ColorizerPackage
    from tasks.registry import log_package, set_alias
    from tasks.tracking import configure_mlflow

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    try:
        check_reference_checkpoint(state)
    except ValueError as e:
        typer.echo(f"{checkpoint}: {e}", err=True)
        raise typer.Exit(2) from None
    model = Colorizer(ModelConfig("eccv16"))
    model.load_state_dict(state)
    configure_mlflow()
    with mlflow.start_run(run_name="import-eccv16"):
        mlflow.set_tag("source", f"imported reference checkpoint {os.path.basename(checkpoint)}")
        _, version = log_package(ColorizerPackage(model.eval(), canonical_bins(), meta={"source": "reference ECCV16 release"}), name)
    if alias:
        set_alias(name, alias, version)
    typer.echo(f"models:/{name}/{version}" + (f"  (alias {alias}: models:/{name}@{alias})" if alias else ""))


stack_app = typer.Typer(help="The local stack: Prefect server, MLflow server, SeaweedFS S3, Dask scheduler and 2 workers.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up_cmd(
    prefect_port: int = typer.Option(4200),
    mlflow_port: int = typer.Option(5000),
    s3_port: int = typer.Option(8333),
    dask_port: int = typer.Option(8786),
) -> None:
    """Start every service on 127.0.0.1 and print the environment for the shell (eval "$(colorize stack up)")."""
    from tasks.stack import StackPorts, exports, stack_up
    from tasks.tracking import state_dir

    info = stack_up(state_dir(), StackPorts(prefect_port, mlflow_port, s3_port, dask_port))
    for name, s in info["services"].items():
        typer.echo(f"# {name}: pid {s['pid']}, {s['url']}, log {s['log']}", err=True)
    typer.echo(exports(info["env"]))


@stack_app.command("down")
def stack_down_cmd() -> None:
    """Stop every service of the stack by PID."""
    from tasks.stack import stack_down
    from tasks.tracking import state_dir

    stopped = stack_down(state_dir())
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no stack was running")


@stack_app.command("status")
def stack_status_cmd() -> None:
    from tasks.stack import stack_status
    from tasks.tracking import state_dir

    for name, alive in stack_status(state_dir()).items():
        typer.echo(f"{name}: {'running' if alive else 'stopped'}")


@app.command()
def evaluate(
    shards: str = typer.Argument(..., help="shards whose validation split is scored"),
    model: str = typer.Option("models:/colorizer@champion"),
    limit: Optional[int] = typer.Option(None, help="at most this many validation images"),
) -> None:
    """AuC (plain, rebalanced), PSNR, colourfulness of a model and of the gray and prior-mean baselines."""
    from flows.evaluate import evaluate_flow

    results = _guarded(evaluate_flow, model, shards, limit)
    typer.echo(f"{'':22s} {'AuC':>7s} {'AuC rb':>7s} {'PSNR':>6s} {'colour':>7s} {'delta C':>8s}")
    for k, v in results.items():
        typer.echo(
            f"{k:22s} {v['auc']:7.4f} {v['auc_rebalanced']:7.4f} {v['psnr']:6.2f} {v['colourfulness']:7.1f} {v['delta_colourfulness']:+8.1f}"
        )


@app.command()
def promote(
    model: str = typer.Option("colorizer", help="registered model name"),
    candidate: str = typer.Option(..., help="candidate version"),
    shards: Optional[str] = typer.Option(None, help="validation shards (default: the candidate's training shards)"),
    alias: str = typer.Option("champion"),
    auc_tolerance: float = typer.Option(0.01),
    psnr_tolerance: float = typer.Option(0.5),
    colourfulness_tolerance: float = typer.Option(2.0),
) -> None:
    """Move the champion alias to the candidate only when it is at least as good (exit 1 when refused)."""
    from flows.evaluate import promote_flow

    d = _guarded(
        promote_flow,
        model,
        candidate,
        shards=shards,
        alias=alias,
        auc_tolerance=auc_tolerance,
        psnr_tolerance=psnr_tolerance,
        colourfulness_tolerance=colourfulness_tolerance,
    )
    typer.echo(f"{model} v{candidate}: {'promoted to ' + alias if d['promoted'] else 'refused'} ({d['reason']})")
    raise typer.Exit(0 if d["promoted"] else 1)


@app.command()
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
    from tasks.train import train_config

    _storage(storage_options)
    cfg = _checked(lambda: train_config(config, set_, None, "", 1))
    model = _checked(lambda: ModelConfig(arch=arch))
    _show(
        _guarded(
            pipeline_flow,
            source,
            workdir=workdir,
            method=method,
            model=model,
            train=cfg,
            split_by_folder=split_by_folder,
            model_name=model_name,
            init_model=init_model,
            dask_address=dask_address,
        )
    )


@app.command()
def run(
    source: str = typer.Option(SAMPLES, help="collection to restore (default: the sample collection)"),
    dest: Optional[str] = typer.Option(None, help="default: <state folder>/restored"),
) -> None:
    """The main job on embedded defaults: restore a collection with the champion model (the bundled
    default model when the registry has none), local folders as object storage, MLflow on SQLite,
    Prefect without a server."""
    from flows.restore import restore_flow
    from tasks.tracking import state_dir

    s = _guarded(restore_flow, source, dest or str(state_dir() / "restored"))
    _report(s)
    raise typer.Exit(min(s.failed, 100))


if __name__ == "__main__":
    app()
