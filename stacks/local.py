"""The local stack: Prefect server, MLflow server, SeaweedFS S3 and a Dask scheduler with two
workers, all on 127.0.0.1, PIDs and logs in the state folder, health-checked, stopped by PID."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stacks.services import DASK_LOOPBACK, _bin, _spawn, client_env, pid_alive, private_files, start_seaweedfs, stop_pid, wait_http
from tasks.cluster import dask_env_vars

S3_KEY, S3_SECRET, S3_BUCKET = "colorize", "colorize-local-secret", "archive"


@dataclass(frozen=True)
class StackPorts:
    prefect: int = 4200
    mlflow: int = 5000
    s3: int = 8333
    dask: int = 8786
    postgres: int = 5432  # the production stack only


QUIET = {"DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def stack_dir(state: Path, production: bool = False) -> Path:
    return state / ("stack-production" if production else "stack")


def record_services(root: Path, services: dict, env: Callable[[], dict]):
    """A function that records one started service (pid, url, log) in root/stack.json at once, so that
    `stack down` finds every process even when start-up fails half-way."""

    def record(name: str, pid: int, url: str) -> None:
        services[name] = {"pid": pid, "url": url, "log": str(root / "logs" / f"{name}.log")}
        (root / "stack.json").write_text(json.dumps({"services": services, "env": env()}, indent=2))

    return record


def wait_workers(env: dict, n: int, timeout: float = 90) -> None:
    from tasks.cluster import connect

    with connect(env["COLORIZE_DASK_ADDRESS"], env, timeout=timeout) as client:
        client.wait_for_workers(n, timeout=timeout)


def _wait_port(port: int, pid: int, name: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"{name} exited during start-up (see its log)")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{name} not listening on {port} after {timeout:.0f} s")


def stack_up(state: Path, ports: StackPorts = StackPorts()) -> dict:
    """Starts every service, waits until each is healthy, records them; returns the environment."""
    root = stack_dir(state)
    if (root / "stack.json").exists():
        raise RuntimeError(f"a stack is already recorded in {root / 'stack.json'}: run `colorize stack down` first")
    with private_files(root):  # stack.json holds every client's keys
        return _start(state, root, ports)


def _start(state: Path, root: Path, ports: StackPorts) -> dict:
    logs = root / "logs"
    env = client_env(ports, (S3_KEY, S3_SECRET))
    services: dict[str, dict] = {}
    record = record_services(root, services, lambda: env)

    try:
        pid = _spawn("prefect", [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(ports.prefect)], logs,
                     env={**QUIET, "PREFECT_HOME": str(root / "prefect"), "PREFECT_UI_ENABLED": "false", "PREFECT_API_URL": ""})  # fmt: skip
        record("prefect", pid, env["PREFECT_API_URL"])
        pid = _spawn("mlflow", [_bin("mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "mlartifacts"),
                                "--host", "127.0.0.1", "--port", str(ports.mlflow), "--workers", "1"], logs,
                     env={**QUIET, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # fmt: skip
        record("mlflow", pid, env["MLFLOW_TRACKING_URI"])
        s3 = start_seaweedfs(root / "seaweedfs", S3_KEY, S3_SECRET, S3_BUCKET, ports.s3)
        record("seaweedfs", s3.pid, s3.url)
        pid = _spawn(
            "dask-scheduler",
            [_bin("dask"), "scheduler", "--port", str(ports.dask), *DASK_LOOPBACK],
            logs,
            env={**QUIET, **dask_env_vars()},
        )
        record("dask-scheduler", pid, env["COLORIZE_DASK_ADDRESS"])
        _wait_port(ports.dask, pid, "dask scheduler")
        for i in range(2):
            pid = _spawn(f"dask-worker-{i}", [_bin("dask"), "worker", env["COLORIZE_DASK_ADDRESS"], "--nthreads", "1", "--nworkers", "1", *DASK_LOOPBACK, "--name", f"worker-{i}"],
                         logs, env={**QUIET, **env, **dask_env_vars()})  # fmt: skip
            record(f"dask-worker-{i}", pid, env["COLORIZE_DASK_ADDRESS"])
        wait_http(f"http://127.0.0.1:{ports.prefect}/api/health", services["prefect"]["pid"], 120, "prefect server")
        wait_http(f"http://127.0.0.1:{ports.mlflow}/health", services["mlflow"]["pid"], 120, "mlflow server")
        wait_workers(env, 2)
    except BaseException:
        stack_down(state)
        raise
    return {"services": services, "env": env}


def stack_down(state: Path, production: bool = False) -> list[str]:
    """Stops every recorded service by PID; returns the names that were running."""
    path = stack_dir(state, production) / "stack.json"
    if not path.exists():
        return []
    services = json.loads(path.read_text())["services"]
    for name in reversed(list(services)):
        stop_pid(services[name]["pid"])
    path.unlink()
    return list(services)


def stack_status(state: Path, production: bool = False) -> dict[str, bool]:
    path = stack_dir(state, production) / "stack.json"
    if not path.exists():
        return {}
    return {name: pid_alive(s["pid"]) for name, s in json.loads(path.read_text())["services"].items()}


def exports(env: dict[str, str]) -> str:
    return "\n".join(f"export {k}={v}" for k, v in env.items())
