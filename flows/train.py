"""Train flow: shards + bin set -> a trained colorizer, tracked in MLflow and registered."""

from __future__ import annotations

import dataclasses
import os
import time

from prefect import flow

from colorize_core.models import ModelConfig
from colorize_core.train import TrainConfig
from tasks.registry import resolve
from tasks.tracking import configure_mlflow, state_dir
from tasks.train import TrainJob, register, start_run, train_model


@flow(name="train", log_prints=True)
def train_flow(
    shards: str,
    bins: str,
    model: ModelConfig = ModelConfig(),
    train: TrainConfig = TrainConfig(),
    model_name: str = "colorizer",
    checkpoint_dir: str | None = None,
    resume: str | None = None,
    init_model: str | None = None,
    nproc: int = 1,
) -> dict:
    """`init_model` (registry URI or package folder) fine-tunes an existing model instead of
    starting from random weights; `resume` continues a checkpoint exactly."""
    configure_mlflow()
    params = {
        "shards": shards,
        "bins": bins,
        "model": dataclasses.asdict(model),
        "train": dataclasses.asdict(train),
        "nproc": nproc,
        "init_model": init_model,
    }
    run_id = start_run(params, run_name=f"{model.arch}-{time.strftime('%Y%m%d-%H%M%S')}")
    checkpoint_dir = checkpoint_dir or os.path.join(state_dir(), "checkpoints", run_id)
    init_dir = resolve(init_model).directory if init_model else None
    job = TrainJob(shards, bins, model, train, checkpoint_dir, resume, init_dir)
    pkg, stats = train_model(job, run_id, nproc)
    return register(pkg, stats, run_id, model_name)
