"""Pipeline flow: preprocess -> bins -> train -> evaluate -> promote, as sub-flows of one parent.

Each step is skipped when its output already exists for the same inputs and parameters: shards
are keyed by content hash, the bin set by its inputs key, the trained model by a tag on its
registered version, the evaluation by tags on the version."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from mlflow import MlflowClient
from prefect import flow, get_run_logger

from colorize_core.bins import BinConfig
from colorize_core.models import ModelConfig
from colorize_core.rebalance import RebalanceConfig
from colorize_core.shards import PreprocessConfig
from colorize_core.train import TrainConfig
from flows.bins import bins_flow
from flows.evaluate import promote_flow
from flows.preprocess import preprocess_flow
from flows.train import train_flow
from tasks.bins import inputs_key
from tasks.preprocess import committed_shards
from tasks.storage import exists, join, read_bytes
from tasks.tracking import configure_mlflow, state_dir


@flow(name="pipeline", log_prints=True)
def pipeline_flow(
    source: str,
    workdir: str | None = None,
    method: str = "grid",
    model: ModelConfig = ModelConfig(),
    train: TrainConfig = TrainConfig(),
    split_by_folder: bool = False,
    preprocess: PreprocessConfig = PreprocessConfig(),
    model_name: str = "colorizer",
    init_model: str | None = None,
    dask_address: str | None = None,
    n_workers: int = 2,
) -> dict:
    """`init_model` fine-tunes an existing model (with `method="canonical"` bins) instead of
    training from scratch."""
    log = get_run_logger()
    skipped = []
    workdir = workdir or str(state_dir() / "pipeline")
    shards, bins_out = join(workdir, "shards"), join(workdir, "bins", f"{method}.npz")

    pre = preprocess_flow(source, shards, preprocess, split_by_folder=split_by_folder, dask_address=dask_address, n_workers=n_workers)
    key = inputs_key(committed_shards(shards), BinConfig(method=method), RebalanceConfig())
    report_url = bins_out[: -len(".npz")] + ".json"
    if exists(report_url) and json.loads(read_bytes(report_url)).get("inputs_key") == key:
        report = json.loads(read_bytes(report_url))
        skipped.append("bins")
        log.info("bins: skipped, %s is up to date", bins_out)
    else:
        report = bins_flow(shards, bins_out, BinConfig(method=method), dask_address=dask_address, n_workers=n_workers)

    configure_mlflow()
    params = {"bins": report["checksum"], "model": dataclasses.asdict(model), "train": dataclasses.asdict(train), "init": init_model}
    train_key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    version = _version_with_tag(model_name, "pipeline.train_key", train_key)
    if version:
        skipped.append("train")
        log.info("train: skipped, %s v%s was trained from the same inputs", model_name, version)
    else:
        trained = train_flow(shards, bins_out, model, train, model_name=model_name, init_model=init_model)
        version = trained["version"]
        MlflowClient().set_model_version_tag(model_name, version, "pipeline.train_key", train_key)
    decision = promote_flow(model_name, version, shards=shards)
    return {
        **decision,
        "preprocess": {"written": pre.written, "quarantined": pre.quarantined},
        "bins": report["checksum"],
        "model": f"models:/{model_name}/{version}",
        "skipped": skipped,
    }


def _version_with_tag(name: str, tag: str, value: str) -> str | None:
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception:
        return None
    for v in versions:
        if v.tags.get(tag) == value:
            return str(v.version)
    return None
