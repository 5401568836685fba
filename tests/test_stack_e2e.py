"""End to end on real servers: the local stack up, the pipeline on real photos, promotion, the
`archive-restoration` deployment triggered with `prefect deployment run` and served by a process
worker, results and manifest found in the S3 bucket, the stack down with no process left."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import s3fs
from mlflow import MlflowClient
from PIL import Image

from stacks.local import StackPorts, stack_down, stack_up
from stacks.services import free_port, pid_alive
from tests.photos import real_photo_bytes

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def mlflow_client(env: dict):
    """The stack's registry named explicitly: an in-process flow of an earlier test may have set MLflow's global one."""
    return MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])


def last_json(out: str) -> dict:
    """The JSON document the CLI prints last (logs may come before it)."""
    start = out.rfind("\n{") + 1
    return json.loads(out[start:])


def run(cmd: list[str], env: dict, timeout: int = 600, with_stderr: bool = False) -> str:
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd[:4])} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + (res.stderr if with_stderr else "")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("stack-state")
    ports = StackPorts(free_port(), free_port(), free_port(), free_port())
    info = stack_up(state, ports)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}, **info["env"]}
    env.update(COLORIZE_HOME=str(state), PREFECT_HOME=str(state / "client-prefect"), COLORIZE_REPO=str(REPO), DO_NOT_TRACK="true")
    pids = [s["pid"] for s in info["services"].values()]
    yield state, env, pids
    stack_down(state)


def training_photos_and_pipeline(env: dict) -> tuple[s3fs.S3FileSystem, dict, list[str]]:
    """The real photos uploaded as training photos to the stack's bucket (split by folder), and the
    pipeline command: shards and bins in S3, tracking in the MLflow server, Dask workers of the stack;
    fine-tuning the bundled model briefly gives a candidate that beats the gray baseline."""
    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], client_kwargs={"endpoint_url": env["COLORIZE_S3_ENDPOINT"]},
                           skip_instance_cache=True)  # fmt: skip
    photos = real_photo_bytes()
    for name, data in photos.items():
        split = "val" if name in ("astronaut.png", "grace_hopper.jpg") else "train"
        fs.pipe(f"archive/training-photos/{split}/{name}", data)
    pipe = [str(BIN / "colorize"), "pipeline", "s3://archive/training-photos", "--workdir", "s3://archive/pipeline", "--method", "canonical",
            "--arch", "small", "--set", "steps=3", "--set", "batch_size=4", "--set", "augment.crop=96", "--set", "val_every=3", "--split-by-folder",
            "--init-model", str(REPO / "colorize_core" / "default_model"), "--json"]  # fmt: skip
    return fs, photos, pipe


def test_pipeline_promotion_and_scheduled_restoration(stack):
    state, env, pids = stack
    fs, photos, pipe = training_photos_and_pipeline(env)
    result = last_json(run(pipe, env))
    assert result["promoted"] and result["skipped"] == []
    assert fs.glob("archive/pipeline/shards/*.parquet") and fs.exists("archive/pipeline/bins/canonical.npz")
    client = mlflow_client(env)
    champion = client.get_model_version_by_alias("colorizer", "champion")
    assert f"models:/colorizer/{champion.version}" == result["model"]
    again = last_json(run(pipe, env))
    assert again["skipped"] == ["bins", "train"] and again["model"] == result["model"]

    # deployments on the Prefect server, a run triggered by name, served by a process worker
    run([str(BIN / "prefect"), "work-pool", "create", "colorize-process", "--type", "process"], env)
    run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml"], env)
    for name in ("grace_hopper.jpg", "china.jpg"):
        buf = io.BytesIO()
        Image.open(io.BytesIO(photos[name])).convert("L").save(buf, "JPEG", quality=90)
        fs.pipe(f"archive/incoming/{name}", buf.getvalue())
    run(
        [
            str(BIN / "prefect"),
            "deployment",
            "run",
            "restore/archive-restoration",
            "--param",
            "source=s3://archive/incoming",
            "--param",
            "dest=s3://archive/restored",
        ],
        env,
    )
    worker = run([str(BIN / "prefect"), "worker", "start", "--pool", "colorize-process", "--run-once"], env, with_stderr=True)
    prefix = f"archive/restored/colorizer-v{champion.version}"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(prefix)) == ["china.jpg", "grace_hopper.jpg"], worker[-3000:]
    assert len(fs.glob("archive/restored/_manifests/*.parquet")) == 1
    assert fs.glob("archive/restored/_reports/*.png")

    stack_down(state)
    assert not [p for p in pids if pid_alive(p)], "a process of the stack is still alive"
