"""Trains candidate default models side by side on one lent GPU machine, each sized to a wall-clock budget.

A GPU lease here is short and fixed, and that machine has torch but none of the orchestration
packages, so this calls `colorize_core.train.train` directly (the loop `colorize train` runs) on
shards copied beside the checkout. Every run first goes for `--calibrate` seconds with all runs
at once (so the measured speed includes their contention); its step count is then what its speed
fits into the time left, so each cosine schedule ends before the deadline instead of being cut.
Whenever a validation improves, the run's weights go to OUT as float16 (a run killed at the deadline
still leaves its best); runs whose weights exceed `--max-mb` report their figures only.
Tracking happens afterwards, where MLflow runs: `scripts/track_gpu_runs.py OUT`.

Usage: python scripts/train_on_gpu.py SHARDS BINS OUT --seconds 480 --run NAME:ARCH:BATCH:LR[:INIT_PACKAGE] ...
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass

import torch

from colorize_core.bins import BinSet
from colorize_core.data import AugmentConfig, open_local
from colorize_core.degrade import DegradeConfig
from colorize_core.models import ModelConfig, network_state
from colorize_core.package import load_package
from colorize_core.train import Hooks, TrainConfig, train


@dataclass(frozen=True)
class Run:
    name: str
    arch: str
    batch: int
    lr: float
    init: str | None = None  # a package folder to start from (fine-tuning the shipped model)

    @classmethod
    def parse(cls, text: str) -> "Run":
        name, arch, batch, lr, *init = text.split(":")
        return cls(name, arch, int(batch), float(lr), init[0] if init else None)


class Calibrated(Exception):
    """Raised from a hook to end the calibration pass (train() has no other way out mid-run)."""


class Clock(Hooks):
    def __init__(self, seconds: float, warmup: float):
        self.t0, self.seconds, self.warmup = time.perf_counter(), seconds, warmup
        self.marks: list[tuple[float, int]] = []

    def metrics(self, step, values):
        t = time.perf_counter() - self.t0
        if t >= self.warmup:
            self.marks.append((t, step))
        if t >= self.seconds and len(self.marks) >= 2:
            raise Calibrated

    def steps_per_second(self) -> float:
        (t_a, s_a), (t_b, s_b) = self.marks[0], self.marks[-1]
        return (s_b - s_a) / max(t_b - t_a, 1e-6)


class KeepBest(Hooks):
    """Validation history to a JSON-lines file; the best weights (by `metric`) to OUT as float16."""

    def __init__(self, run: Run, out: str, metric: str, max_bytes: int):
        self.run, self.out, self.metric, self.max_bytes = run, out, metric, max_bytes
        self.best, self.best_step, self.t0 = None, -1, time.perf_counter()

    def validation(self, step, values, preview):
        row = {"step": step, "seconds": round(time.perf_counter() - self.t0, 1), **values}
        with open(os.path.join(self.out, f"{self.run.name}.history.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.best is None or values[self.metric] >= self.best:
            self.best, self.best_step = values[self.metric], step

    def checkpoint(self, step, path):  # checkpoints follow validations at the same steps
        if step == self.best_step:
            state = torch.load(path, map_location="cpu", weights_only=True)
            half = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
            if sum(v.numel() * v.element_size() for v in half.values()) <= self.max_bytes:
                meta = {"step": step, "model_config": state["model_config"], "bins_checksum": state["bins_checksum"]}
                tmp = os.path.join(self.out, f"{self.run.name}.pt.tmp")
                torch.save({"model": half, **meta}, tmp)
                os.replace(tmp, os.path.join(self.out, f"{self.run.name}.pt"))
        for old in glob.glob(os.path.join(os.path.dirname(path), "step-*.pt")):
            if old != path:
                os.remove(old)


def config(run: Run, steps: int, val_every: int, loader_workers: int) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=run.batch,
        lr=run.lr,
        val_every=val_every,
        val_images=64,
        checkpoint_every=val_every,
        loader_workers=loader_workers,
        precision="bfloat16",
        augment=AugmentConfig(crop=176, degrade=DegradeConfig(p=0.5)),
    )


def one_run(run: Run, args: argparse.Namespace, deadline: float) -> None:
    torch.set_num_threads(2)
    torch.backends.cudnn.benchmark = True
    bins = BinSet.load(args.bins)
    urls = sorted(glob.glob(os.path.join(args.shards, "*.parquet")))
    init = network_state(load_package(run.init).model) if run.init else None
    model_cfg = ModelConfig(run.arch, bins.q)
    ckpt = os.path.join(args.scratch, run.name)
    summary: dict = {"run": dataclasses.asdict(run), "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}

    def fit(steps: int, val_every: int, checkpoints: str, hooks: Hooks):
        cfg = config(run, steps, val_every, args.loader_workers)
        return train(bins, urls, open_local, model_cfg, cfg, checkpoints, hooks=hooks, init_state=init)

    clock = Clock(args.calibrate, warmup=args.calibrate / 3)
    try:
        fit(10**7, 10**7, ckpt + "-calibration", clock)
    except Calibrated:
        pass
    rate = clock.steps_per_second()
    left = deadline - time.time() - args.reserve
    steps = max(50, int(rate * left))
    val_every = max(1, steps // args.validations)  # the validations asked for, even when a slow or busy machine plans few steps
    summary |= {"steps_per_second": rate, "images_per_second": rate * run.batch, "steps": steps, "val_every": val_every}
    print(json.dumps({"plan": summary}), flush=True)

    hooks = KeepBest(run, args.out, "auc_rebalanced", int(args.max_mb * 1e6))
    result = fit(steps, val_every, ckpt, hooks)
    summary |= {"result": result.stats()}
    with open(os.path.join(args.out, f"{run.name}.history.jsonl"), "a") as f:  # the last line: one file per run comes back
        f.write(json.dumps({"summary": summary}) + "\n")
    print(json.dumps({"done": summary}), flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("shards")
    p.add_argument("bins")
    p.add_argument("out")
    p.add_argument("--run", action="append", required=True, type=Run.parse)
    p.add_argument("--seconds", type=float, default=480, help="wall clock for everything, from start to the last run's end")
    p.add_argument("--calibrate", type=float, default=30)
    p.add_argument("--reserve", type=float, default=60, help="seconds kept for validations, the final checkpoint and exit")
    p.add_argument("--validations", type=int, default=10)
    p.add_argument("--max-mb", type=float, default=20.0, help="weights (float16) larger than this are not written to OUT")
    p.add_argument("--loader-workers", type=int, default=4, help="per run; one fed an H200 a tenth of what ECCV16 can take")
    p.add_argument("--scratch", default="/tmp/colorize-gpu")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    deadline = time.time() + args.seconds
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=one_run, args=(r, args, deadline), name=r.name) for r in args.run]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        print(f"{proc.name}: exit {proc.exitcode}", flush=True)
    return max(abs(proc.exitcode or 0) for proc in procs)


if __name__ == "__main__":
    sys.exit(main())
