"""Models: preprocessing and bins, training, importing published weights, evaluation, promotion, the pipeline."""

from __future__ import annotations

import json
from typing import Optional

import typer

from cli import options as opt
from cli.common import app, clear_errors, given, show, tracking_reachable


@app.command()
@clear_errors
def preprocess(
    source: str = typer.Argument(..., help="images: local folder, s3://bucket/prefix, any fsspec URL"),
    shards: str = typer.Argument(..., help="where the Lab shards go (any fsspec URL)"),
    size: Optional[int] = typer.Option(None, help="training size (short side, then centre crop)", show_default="256"),
    val_fraction: Optional[float] = typer.Option(None, help="share of images held out, by content hash", show_default="0.1"),
    rows_per_shard: int = typer.Option(64, help="images per Parquet shard"),
    split_by_folder: bool = opt.SPLIT_BY_FOLDER,
    dask_address: Optional[str] = opt.DASK,
    workers: int = opt.WORKERS,
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """Decode, validate, resize and convert images to Lab shards in Parquet, on Dask."""
    from colorize_core.shards import PreprocessConfig
    from flows.preprocess import preprocess_flow
    from tasks.checks import check_source, check_url

    check_source(source)
    check_url(shards, "shards")
    cfg = PreprocessConfig(**given(size=size, val_fraction=val_fraction))
    s = preprocess_flow(
        source, shards, cfg, rows_per_shard=rows_per_shard, split_by_folder=split_by_folder, dask_address=dask_address, n_workers=workers
    )
    show({k: v for k, v in s.__dict__.items() if k != "shards"} | {"shards": len(s.shards)}, as_json)


@app.command()
@clear_errors
def bins(
    shards: str = typer.Argument(..., help="Lab shards written by `colorize preprocess`"),
    out: str = typer.Option(..., help="bin-set file to write (.npz), with .json, .gamut.png, .prior.png beside it"),
    method: str = opt.BINS_METHOD,
    k: Optional[int] = typer.Option(None, help="K-Means clusters", show_default="313"),
    grid_size: Optional[int] = typer.Option(None, help="grid: cell size in ab units", show_default="10"),
    lam: Optional[float] = typer.Option(None, help="uniform mix of the rebalancing", show_default="0.5"),
    sigma: Optional[float] = typer.Option(None, help="Gaussian smoothing of the prior", show_default="5"),
    dask_address: Optional[str] = opt.DASK,
    workers: int = opt.WORKERS,
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """Estimate the ab bins, their prior and rebalancing weights from the training shards."""
    from colorize_core.bins import BinConfig
    from colorize_core.rebalance import RebalanceConfig
    from flows.bins import bins_flow
    from tasks.checks import check_source, check_url

    check_source(shards, "shards")
    check_url(out, "output")
    cfg = BinConfig(method=method, **given(k=k, grid_size=grid_size))
    show(bins_flow(shards, out, cfg, RebalanceConfig(**given(lam=lam, sigma=sigma)), dask_address=dask_address, n_workers=workers), as_json)


@app.command(
    epilog="Every training setting is a field of TrainConfig, set with --set KEY=VALUE (repeatable) or a JSON --config; "
    "run `colorize train-settings` for the list with defaults."
)
@clear_errors
def train(
    shards: str = typer.Argument(..., help="Lab shards written by `colorize preprocess`"),
    bins: str = typer.Option(..., help="bin set from `colorize bins`"),
    arch: str = opt.ARCH,
    config: Optional[str] = opt.TRAIN_CONFIG,
    set_: list[str] = opt.TRAIN_SET,
    epochs: Optional[float] = typer.Option(None, help="instead of steps: passes over the training rows"),
    model_name: str = opt.MODEL_NAME,
    checkpoint_dir: Optional[str] = typer.Option(None, help="where checkpoints go", show_default="<state>/checkpoints/<run>"),
    resume: Optional[str] = typer.Option(None, help="checkpoint to continue from, exactly"),
    init_model: Optional[str] = opt.INIT_MODEL,
    nproc: int = typer.Option(1, help="data-parallel processes (torchrun)"),
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """Train a colorizer, track it in MLflow and register it."""
    from colorize_core.models import ModelConfig
    from flows.train import train_flow
    from tasks.checks import check_source
    from tasks.train import train_config

    check_source(shards, "shards")
    check_source(bins, "bin set")
    tracking_reachable()
    cfg = train_config(config, set_, epochs, shards, nproc)
    model = ModelConfig(arch=arch, hint_input=cfg.hints.enabled)
    show(
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
        ),
        as_json,
    )


@app.command("train-settings")
def train_settings() -> None:
    """Every TrainConfig field with its default, as `colorize train --set` takes it."""
    from colorize_core.config import describe
    from colorize_core.train import TrainConfig

    typer.echo("\n".join(describe(TrainConfig)))


@app.command("import-weights")
@clear_errors
def import_weights(
    checkpoint: str = typer.Argument(..., help="a released state dict (.pth) of the ECCV16 or the SIGGRAPH17 layout"),
    name: str = opt.MODEL_NAME,
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
def evaluate(
    shards: str = typer.Argument(..., help="shards whose validation split is scored"),
    model: str = opt.MODEL,
    limit: Optional[int] = typer.Option(None, help="at most this many validation images"),
    degraded: bool = typer.Option(False, help="also score a degraded copy of the validation images (archival-scan L)"),
    fit_decoder: bool = typer.Option(False, help="fit the confident decode on these images and register the model with it"),
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """AuC (plain, rebalanced), PSNR, colourfulness of a model under each decode, beside the gray and
    prior-mean baselines; with --fit-decoder, the fitted decode becomes the model's default."""
    from flows.evaluate import evaluate_flow
    from tasks.checks import check_source
    from tasks.evaluate import evaluation_table

    check_source(shards, "shards")
    tracking_reachable()
    out = evaluate_flow(model, shards, limit, degraded=degraded, fit_decoder=fit_decoder)
    if as_json:
        return show(out, True)
    typer.echo(evaluation_table(out["results"]))
    if out.get("fitted"):
        typer.echo(f"fitted decode {json.dumps(out['fitted']['decode'])}: registered as {out['fitted']['model']}")


@app.command()
@clear_errors
def promote(
    candidate: str = typer.Argument(..., help="the version to promote: models:/colorizer/3 (or colorizer/3)"),
    shards: Optional[str] = typer.Option(None, help="validation shards", show_default="the candidate's training shards"),
    alias: str = typer.Option("champion", help="the alias to move"),
    auc_tolerance: Optional[float] = typer.Option(None, help="plain AuC may fall by this much", show_default="0.01"),
    psnr_tolerance: Optional[float] = typer.Option(None, help="PSNR may fall by this many dB", show_default="0.5"),
    colourfulness_tolerance: Optional[float] = typer.Option(None, help="|delta colourfulness| may grow by this much", show_default="2"),
    as_json: bool = opt.JSON,
) -> None:
    """Move the alias (champion) to the candidate only when it is at least as good (exit 1 when refused)."""
    from tasks.model_names import registered_version

    name, version = registered_version(candidate, "candidate")
    tracking_reachable()
    from flows.evaluate import promote_flow
    from tasks.evaluate import PromotionPolicy

    policy = PromotionPolicy(
        **given(auc_tolerance=auc_tolerance, psnr_tolerance=psnr_tolerance, colourfulness_tolerance=colourfulness_tolerance)
    )
    d = promote_flow(name, version, shards=shards, alias=alias, policy=policy)
    show(d, as_json, lambda d: f"models:/{name}/{version}: {'promoted to ' + alias if d['promoted'] else 'refused'} ({d['reason']})")
    raise typer.Exit(0 if d["promoted"] else 1)


@app.command("models")
@clear_errors
def models_cmd(
    name: Optional[str] = typer.Argument(None, help="one registered model", show_default="every one"),
    as_json: bool = opt.JSON,
) -> None:
    """The registered model versions: URI, aliases, figures (rebalanced AuC, PSNR), when, from what."""
    tracking_reachable()
    from tasks.model_list import list_versions, versions_table

    rows = list_versions(name)
    show(rows, as_json, versions_table)


@app.command()
@clear_errors
def pipeline(
    source: str = typer.Argument(..., help="training photos (fsspec URL)"),
    workdir: Optional[str] = typer.Option(None, help="where shards and bins go", show_default="<state>/pipeline"),
    method: str = opt.BINS_METHOD,
    arch: str = opt.ARCH,
    config: Optional[str] = opt.TRAIN_CONFIG,
    set_: list[str] = opt.TRAIN_SET,
    split_by_folder: bool = opt.SPLIT_BY_FOLDER,
    model_name: str = opt.MODEL_NAME,
    init_model: Optional[str] = opt.INIT_MODEL,
    dask_address: Optional[str] = opt.DASK,
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """preprocess -> bins -> train -> evaluate -> promote, skipping steps whose outputs are current."""
    from colorize_core.models import ModelConfig
    from flows.pipeline import pipeline_flow
    from tasks.checks import check_source
    from tasks.train import train_config

    check_source(source)
    tracking_reachable()
    cfg = train_config(config, set_, None, "", 1)
    show(
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
        ),
        as_json,
    )  # fmt: skip
