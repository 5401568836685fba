import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def real_photos() -> dict[str, np.ndarray]:
    """A handful of real colour photographs that ship inside installed wheels (RGB uint8)."""
    from tests.photos import real_photos as load

    return load()
