"""Training on real photos with the tiny network: loss, resume, GAN phases, DDP, MLflow registry."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from colorize_core.bins import BinSet
from colorize_core.data import AugmentConfig, open_local
from colorize_core.degrade import DegradeConfig
from colorize_core.models import ModelConfig
from colorize_core.train import GANConfig, Hooks, TrainConfig, train

AUG = AugmentConfig(crop=96, shuffle_buffer=4)


class Recorder(Hooks):
    def __init__(self):
        self.values, self.validations, self.checkpoints = [], [], []

    def metrics(self, step, values):
        self.values.append((step, values))

    def validation(self, step, values, preview):
        self.validations.append((step, values, preview.shape))

    def checkpoint(self, step, path):
        self.checkpoints.append(path)


def _run(photo_shards, tmp, cfg, resume=None, hooks=None):
    bins = BinSet.load(str(photo_shards / "bins.npz"))
    urls = sorted(glob.glob(str(photo_shards / "part-*.parquet")))
    return train(bins, urls, open_local, ModelConfig("tiny"), cfg, str(tmp), resume, hooks or Hooks())


def test_loss_falls_and_validation_runs(photo_shards, tmp_path):
    rec = Recorder()
    cfg = TrainConfig(steps=60, batch_size=6, lr=2e-3, val_every=30, val_images=2, checkpoint_every=30, loader_workers=0, augment=AUG)
    result = _run(photo_shards, tmp_path, cfg, hooks=rec)
    losses = [v["loss"] for _, v in rec.values]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3
    assert [s for s, _, _ in rec.validations] == [30, 60]
    val = rec.validations[-1][1]
    assert 0 < val["auc"] <= 1 and 0 < val["auc_rebalanced"] <= 1 and val["images"] == 2
    assert rec.validations[-1][2] == (2 * 128, 3 * 128, 3)  # preview rows: gray | predicted | truth
    assert len(rec.checkpoints) == 2 and result.best_step in (30, 60)


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_continues_exactly_with_degradations(photo_shards, tmp_path, workers):
    """With several loader workers too: each keeps its own position, and the resumed loader starts at
    the worker whose turn it was (step 3 of 2 workers: the second)."""
    aug = dataclasses.replace(AUG, degrade=DegradeConfig(p=0.8))
    cfg = TrainConfig(steps=6, batch_size=3, checkpoint_every=3, val_every=1000, loader_workers=workers, augment=aug)
    rec = Recorder()
    whole = _run(photo_shards, tmp_path / "a", cfg, hooks=rec).model.state_dict()
    # continue from the uninterrupted run's step-3 checkpoint, as after a kill
    step3 = str(tmp_path / "a" / "step-0000003.pt")
    resumed = _run(photo_shards, tmp_path / "c", cfg, resume=step3).model.state_dict()
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k
    assert torch.load(step3, weights_only=True)["position"].shape == (1, workers, 2)
    if workers == 2:
        with pytest.raises(ValueError, match="loader_workers=2"):
            _run(photo_shards, tmp_path / "d", dataclasses.replace(cfg, loader_workers=1), resume=step3)


def test_gan_schedule_and_switch(photo_shards, tmp_path):
    rec = Recorder()
    gan = GANConfig(weight=0.05, disc_steps=3, joint_steps=3)
    cfg = TrainConfig(steps=3, batch_size=3, val_every=1000, checkpoint_every=1000, loader_workers=0, augment=AUG, gan=gan)
    _run(photo_shards, tmp_path, cfg, hooks=rec)
    phases = [set(v) - {"epoch"} for _, v in rec.values]
    assert phases[:3] == [{"loss_ce", "loss"}] * 3
    assert phases[3:6] == [{"loss_d"}] * 3
    assert phases[6:] == [{"loss_d", "loss_ce", "loss_adv", "loss"}] * 3
    off = Recorder()
    _run(
        photo_shards,
        tmp_path / "off",
        TrainConfig(steps=3, batch_size=3, val_every=1000, checkpoint_every=1000, loader_workers=0, augment=AUG, gan=GANConfig(weight=0.0)),
        hooks=off,
    )
    assert len(off.values) == 3 and all("loss_d" not in v for _, v in off.values)


def test_discriminator_phase_leaves_the_generator_alone(photo_shards, tmp_path):
    gan = GANConfig(weight=0.05, disc_steps=2, joint_steps=0)
    cfg = TrainConfig(steps=2, batch_size=3, val_every=1000, checkpoint_every=2, loader_workers=0, augment=AUG, gan=gan)
    final = _run(photo_shards, tmp_path, cfg).model.state_dict()
    after_phase1 = torch.load(tmp_path / "step-0000002.pt", weights_only=True)["model"]
    for k, v in after_phase1.items():  # weights and BatchNorm statistics alike
        assert torch.equal(final[k], v), k


def test_ddp_two_processes_keep_identical_weights(photo_shards, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cfg = TrainConfig(steps=3, batch_size=2, val_every=1000, checkpoint_every=1000, loader_workers=0, augment=AUG)
    from tasks.train import TrainJob

    job = TrainJob(str(photo_shards), str(photo_shards / "bins.npz"), ModelConfig("tiny"), cfg, str(tmp_path / "ck"))
    spec = {"job": job.to_dict(), "out": str(out)}
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tasks.train_entry", json.dumps(spec)],
        check=True,
        env=env,
        timeout=300,
    )
    w0 = torch.load(out / "rank0.pt", weights_only=True)
    w1 = torch.load(out / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys()
    for k in w0:
        if "running" in k or "num_batches" in k:
            continue  # BatchNorm statistics are per process, as in DDP without SyncBatchNorm
        assert torch.equal(w0[k], w1[k]), k


def test_train_flow_registers_a_model_that_loads_and_colorizes(photo_shards, mlflow_tmp, prefect_harness):
    import mlflow

    from colorize_core.package import load_package
    from flows.train import train_flow
    from tasks.registry import resolve_model

    cfg = TrainConfig(
        steps=4, batch_size=3, val_every=4, val_images=2, checkpoint_every=4, loader_workers=0, augment=AugmentConfig(crop=96)
    )
    result = train_flow(str(photo_shards), str(photo_shards / "bins.npz"), ModelConfig("tiny"), cfg)
    assert result["version"] == "1" and result["registry_uri"] == "models:/colorizer/1"
    run = mlflow.MlflowClient().get_run(result["run_id"])
    assert run.data.params["train.steps"] == "4" and run.data.params["model.arch"] == "tiny"
    assert "val_auc_rebalanced" in run.data.metrics and "loss" in run.data.metrics
    arts = [a.path for a in mlflow.MlflowClient().list_artifacts(result["run_id"], "previews")]
    assert arts, "a before/after preview per validation"
    ref = resolve_model("models:/colorizer/1")
    pkg = load_package(ref.directory)
    assert ref.version == "1" and pkg.bins.q == 313 and len(ref.sha256) == 64
    pyfunc = mlflow.pyfunc.load_model("models:/colorizer/1")
    gray = (np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)
    out = pyfunc.predict([gray])
    assert out[0].shape == (40, 60, 3) and out[0].dtype == np.uint8


def test_precision_is_chosen_by_measurement_unless_set(photo_shards, tmp_path):
    from colorize_core.inference import bf16_pays

    model = __import__("colorize_core.models", fromlist=["Colorizer"]).Colorizer(ModelConfig("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    use, info = bf16_pays(model.train(), torch.rand(2, 1, 64, 64) * 100, train=True, reps=1)
    assert info["measured"] and info["precision"] == ("bfloat16" if use else "float32")
    assert use == (info["float32_s"] / info["bfloat16_s"] >= 1.15)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "measuring leaves BatchNorm statistics as they were"
    cfg = TrainConfig(steps=1, batch_size=2, val_every=1000, checkpoint_every=1000, loader_workers=0, precision="float32", augment=AUG)
    assert _run(photo_shards, tmp_path, cfg).precision == "float32"


def test_gpu_script_sizes_runs_to_its_budget_and_keeps_the_best(photo_shards, tmp_path, mlflow_tmp):
    """scripts/train_on_gpu.py runs once per GPU lease, so it is run here on the CPU, on shards packed as
    for the trip (scripts/pack_for_gpu.py: the same rows): a run is calibrated, planned into the time
    left, validated, its best weights come back as a loadable checkpoint, and scripts/track_gpu_runs.py
    records it in MLflow afterwards."""
    import mlflow
    import pyarrow.parquet as pq

    from colorize_core.package import package_from_checkpoint
    from scripts.pack_for_gpu import pack
    from scripts.track_gpu_runs import main as track

    packed = tmp_path / "gpu"
    pack(str(photo_shards), str(photo_shards / "bins.npz"), str(packed))
    for part in photo_shards.glob("*.parquet"):
        assert pq.read_table(packed / "shards" / part.name).equals(pq.read_table(part))
    out = tmp_path / "out"
    cmd = [sys.executable, "scripts/train_on_gpu.py", str(packed / "shards"), str(packed / "bins.npz"), str(out)]
    cmd += ["--seconds", "30", "--calibrate", "5", "--reserve", "12", "--validations", "2", "--scratch", str(tmp_path / "ckpt")]
    cmd += ["--run", "t:tiny:4:1e-3"]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    subprocess.run(cmd, check=True, env=env, timeout=120, capture_output=True)
    rows = [json.loads(line) for line in (out / "t.history.jsonl").read_text().splitlines()]
    history, summary = rows[:-1], rows[-1]["summary"]
    assert summary["steps"] >= 50 and summary["result"]["steps"] == summary["steps"]
    assert [r["step"] for r in history][-1] == summary["steps"] and len(history) >= 2
    best = max(history, key=lambda r: r["auc_rebalanced"])
    pkg = package_from_checkpoint(str(out / "t.pt"), BinSet.load(str(photo_shards / "bins.npz")))
    assert pkg.meta["step"] == best["step"] == summary["result"]["best_step"]
    assert next(iter(pkg.model.parameters())).dtype == torch.float32  # float16 on disk, float32 in use
    track([str(out)])
    run = mlflow.search_runs(experiment_names=["colorization"], output_format="list")[0]
    assert run.info.run_name == "gpu-t" and run.data.params["arch"] == "tiny"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "auc_rebalanced")]
    assert steps == [r["step"] for r in history]
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "checkpoint")] == ["checkpoint/t.pt"]
