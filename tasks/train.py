"""Training tasks: the core loop with MLflow hooks and fsspec storage, in-process or under torchrun."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import mlflow
import numpy as np
from mlflow import MlflowClient
from prefect import task
from prefect.cache_policies import NONE

from colorize_core.bins import BinSet
from colorize_core.config import with_overrides
from colorize_core.models import ModelConfig, network_state, parameter_count
from colorize_core.package import ColorizerPackage, load_package
from colorize_core.settings import DecodeConfig
from colorize_core.train import Hooks, TrainConfig, steps_for_epochs, train, train_config_from_dict
from tasks import logger as get_run_logger
from tasks.preprocess import committed_shards, read_shard_table
from tasks.registry import log_package
from tasks.storage import open_url, read_bytes


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


class MlflowHooks(Hooks):
    """Per-step losses, validation metrics and a preview grid per validation, into one run."""

    def __init__(self, run_id: str, log_every: int = 10):
        self.client, self.run_id, self.log_every = MlflowClient(), run_id, log_every

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if step % self.log_every == 0 or step == 1:
            for k, v in values.items():
                self.client.log_metric(self.run_id, k, v, step=step)

    def validation(self, step: int, values: dict[str, float], preview: np.ndarray) -> None:
        for k, v in values.items():
            self.client.log_metric(self.run_id, f"val_{k}" if not k.startswith("val_") else k, v, step=step)
        if preview.size > 3:
            self.client.log_image(self.run_id, preview, f"previews/step-{step:07d}.png")

    def checkpoint(self, step: int, path: str) -> None:
        self.client.set_tag(self.run_id, "last_checkpoint", path)


def load_bins(url: str) -> BinSet:
    return BinSet.from_bytes(read_bytes(url))


def initial_state(init_dir: str | None, bins: BinSet, model_cfg: ModelConfig) -> dict | None:
    """Weights of a package's network to fine-tune from (`network_state`); its bins must have the same centres."""
    if not init_dir:
        return None
    pkg = load_package(init_dir)
    if pkg.bins.q != bins.q or not np.allclose(pkg.bins.centres, bins.centres):
        raise ValueError(f"{init_dir} predicts other bins than the training bin set: fine-tune with --method canonical bins")
    if pkg.model.cfg.arch != model_cfg.arch:
        raise ValueError(f"{init_dir} is a {pkg.model.cfg.arch} network, not {model_cfg.arch}")
    return network_state(pkg.model)


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """What one training run reads and where it keeps its checkpoints: the same in this process and
    in each torchrun rank (which gets it as JSON)."""

    shards: str
    bins_url: str
    model_cfg: ModelConfig
    cfg: TrainConfig
    checkpoint_dir: str
    resume: str | None = None
    init_dir: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainJob:
        return cls(**dict(d, model_cfg=ModelConfig(**d["model_cfg"]), cfg=train_config_from_dict(d["cfg"])))


def run_training(job: TrainJob, run_id: str | None):
    bins = load_bins(job.bins_url)
    hooks = MlflowHooks(run_id) if run_id else Hooks()
    init = initial_state(job.init_dir, bins, job.model_cfg)
    shards = committed_shards(job.shards)
    return bins, train(bins, shards, open_url, job.model_cfg, job.cfg, job.checkpoint_dir, job.resume, hooks, init)


@task(cache_policy=NONE)
def train_model(job: TrainJob, run_id: str, nproc: int = 1) -> tuple[ColorizerPackage, dict]:
    """Training in this process, or data-parallel in `nproc` processes (gloo on CPU, NCCL on GPUs;
    rank 0 logs and saves); returns the package of the best model and the run's figures."""
    if nproc <= 1:
        bins, result = run_training(job, run_id)
        return ColorizerPackage(result.model.cpu(), bins, DecodeConfig()), result.stats()
    out = tempfile.mkdtemp(prefix="colorize-ddp-")
    spec = {"job": job.to_dict(), "out": out}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "tasks.train_entry",
        json.dumps(spec),
    ]
    get_run_logger().info("starting %s", " ".join(cmd[:6]))
    subprocess.run(cmd, check=True, env=dict(os.environ, MLFLOW_RUN_ID=run_id))
    with open(os.path.join(out, "stats.json")) as f:
        stats = json.load(f)
    return load_package(os.path.join(out, "package")), stats


@task(cache_policy=NONE)
def start_run(params: dict, run_name: str | None = None) -> str:
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(flatten(params))
        return run.info.run_id


@task(retries=2, retry_delay_seconds=3, cache_policy=NONE)
def register(pkg: ColorizerPackage, stats: dict, run_id: str, model_name: str) -> dict:
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"final_{k}": float(v) for k, v in stats.items() if isinstance(v, (int, float))})
        mlflow.log_param("parameters", parameter_count(pkg.model))
        mlflow.set_tag("precision", stats.get("precision", ""))
        pkg.meta = dict(pkg.meta, name=model_name, run_id=run_id, validation={k: v for k, v in stats.items()})
        uri, version = log_package(pkg, model_name)
    get_run_logger().info("registered %s version %s (%s)", model_name, version, uri)
    return {
        "run_id": run_id,
        "model_uri": uri,
        "name": model_name,
        "version": version,
        "registry_uri": f"models:/{model_name}/{version}",
        **stats,
    }


def train_config(config_file: str | None, assignments: list[str], epochs: float | None, shards: str, nproc: int = 1) -> TrainConfig:
    """The TrainConfig a command line asks for: defaults, then a JSON file, then KEY=VALUE assignments;
    `epochs` turns into steps from the number of training rows in the shards."""
    cfg = TrainConfig()
    if config_file:
        with open(config_file) as f:
            cfg = train_config_from_dict(json.load(f))
    cfg = with_overrides(cfg, assignments)
    if epochs is not None:
        rows = sum(sum(s == "train" for s in read_shard_table(u, ["split"]).column("split").to_pylist()) for u in committed_shards(shards))
        cfg = dataclasses.replace(cfg, steps=steps_for_epochs(epochs, rows, cfg.batch_size, nproc))
    return cfg
