"""Train flow: shards + bin set -> a trained colorizer, tracked in MLflow and registered."""

from __future__ import annotations

import dataclasses
import os
import time

from prefect import flow

from colorize_core.data import AugmentConfig
from colorize_core.models import ModelConfig
from colorize_core.train import GANConfig, TrainConfig
from tasks.registry import resolve
from tasks.tracking import configure_mlflow, state_dir
from tasks.train import register, start_run, train_in_process, train_with_torchrun


@flow(name="train", log_prints=True)
def train_flow(
    shards: str,
    bins: str,
    arch: str = "small",
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 3e-4,
    crop: int = 176,
    gan_weight: float = 0.0,
    disc_steps: int = 100,
    joint_steps: int = 200,
    val_every: int = 200,
    val_images: int = 32,
    checkpoint_every: int = 200,
    loader_workers: int = 1,
    bf16: bool = False,
    seed: int = 0,
    model_name: str = "colorizer",
    checkpoint_dir: str | None = None,
    resume: str | None = None,
    init_model: str | None = None,
    nproc: int = 1,
) -> dict:
    """`init_model` (registry URI or package folder) fine-tunes an existing model instead of
    starting from random weights."""
    model_cfg = ModelConfig(arch=arch)
    cfg = TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, val_every=val_every, val_images=val_images,
        checkpoint_every=checkpoint_every, loader_workers=loader_workers, bf16=bf16,
        augment=AugmentConfig(crop=crop), gan=GANConfig(weight=gan_weight, disc_steps=disc_steps, joint_steps=joint_steps),
    )  # fmt: skip
    configure_mlflow()
    params = {
        "shards": shards,
        "bins": bins,
        "model": dataclasses.asdict(model_cfg),
        "train": dataclasses.asdict(cfg),
        "nproc": nproc,
        "init_model": init_model,
    }
    run_id = start_run(params, run_name=f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}")
    checkpoint_dir = checkpoint_dir or os.path.join(state_dir(), "checkpoints", run_id)
    init_dir = resolve(init_model).directory if init_model else None
    if nproc > 1:
        pkg, stats = train_with_torchrun(shards, bins, model_cfg, cfg, checkpoint_dir, resume, run_id, nproc, init_dir)
    else:
        pkg, stats = train_in_process(shards, bins, model_cfg, cfg, checkpoint_dir, resume, run_id, init_dir)
    return register(pkg, stats, run_id, model_name)
