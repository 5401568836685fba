"""The project's local state folder and the environment of the embedded defaults.

Light on purpose (no Prefect, MLflow or torch): the command line reads it before deciding what to load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Iterable, Iterator

# the embedded defaults, set where the user has not chosen: telemetry off (no network here), a temporary
# Prefect API with room to prepare its database on a slow or busy machine, an MLflow client that gives up
# on an unreachable server in about a minute instead of retrying for many
DEFAULT_ENV = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


SAMPLE_COLLECTION = Path(__file__).resolve().parents[1] / "cli" / "samples" / "collection"  # real photographs, package data of the wheel


def default_home() -> Path:
    """Where state lives when COLORIZE_HOME is unset: the user's data folder (XDG), so that an installed
    `colorize` works from any folder and finds the same registry and runs again (the repository's
    Makefile sets COLORIZE_HOME to its own .state/)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "colorize"


def state_dir() -> Path:
    """The project's local state folder (MLflow, Prefect, checkpoints, stack logs, logs)."""
    path = Path(os.environ.get("COLORIZE_HOME") or default_home()).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def apply_embedded_defaults() -> Path:
    """Sets DEFAULT_ENV where unset and makes PREFECT_HOME (default <state>/prefect) exist with its
    parents before Prefect looks; returns PREFECT_HOME."""
    for k, v in DEFAULT_ENV.items():
        os.environ.setdefault(k, v)
    home = Path(os.environ.setdefault("PREFECT_HOME", str(state_dir() / "prefect")))
    home.mkdir(parents=True, exist_ok=True)
    return home


def without_flow_heartbeats(api_url: str | None = None) -> contextlib.AbstractContextManager:
    """Prefect settings with flow-run heartbeats off, for flows run under the temporary local API
    (at `api_url` when the project started it). Heartbeats let a server mark a run whose process died
    as crashed; the temporary API dies with the process, so nobody is there to read them, and their
    thread, sleeping a second at a time, holds every flow run (each subflow of the pipeline too) up to
    a second after its work is done."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None} | ({PREFECT_API_URL: api_url} if api_url else {}))


def prefect_database_missing(home: Path) -> bool:
    """True when no Prefect server is configured and the temporary API has no database yet (it will
    run its migrations first: the slow part of a first run)."""
    return not os.environ.get("PREFECT_API_URL") and not (home / "prefect.db").exists()


_HELD = threading.local()


@contextlib.contextmanager
def setup_lock(name: str = "setup") -> Iterator[None]:
    """An exclusive lock on <state>/.<name>.lock across processes (re-entrant within a thread): the
    first-time set-up of the state (MLflow's SQLite migrations, the experiment, the bundled model's
    registration, the temporary Prefect API's database) runs once when two first runs start together
    (two scheduled runs on a new machine); the second waits, then finds it done."""
    held = getattr(_HELD, "names", None) or set()
    _HELD.names = held
    if name in held:
        yield
        return
    with open(state_dir() / f".{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        held.add(name)
        try:
            yield
        finally:
            held.discard(name)
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def environ_kept(keys: Iterable[str]) -> Iterator[None]:
    """The environment variables `keys` as they were before the block once it ends: set back, or removed."""
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
