"""Prefect's temporary local API, started by the project when no server is configured.

It is what Prefect's own ephemeral mode starts (uvicorn on `prefect.server.api.server:create_app`,
UI off), but launched by restore as soon as its arguments are checked, before Prefect is imported, and
without importing Prefect's server into this process: that import (about 2 s) held the interpreter
lock against the command's own start-up. The server is waited for only when the flow needs it.
PREFECT_API_URL is set at once, so subprocesses find it (`tasks.state.without_flow_heartbeats(url)`
tells Prefect in this process). It stops when the command exits, or is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tasks.checks import ServiceUnavailable
from tasks.ports import free_port
from tasks.state import prefect_database_missing, setup_lock, state_dir


def _ends_with_parent() -> None:
    """In the server's process before it starts: Linux sends it SIGTERM when the command dies, even by
    SIGKILL, when no exit hook runs (elsewhere the exit hook alone stops it)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TemporaryApi:
    def __init__(self, home: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        self.log = state_dir() / "logs" / "prefect-api.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._setup = contextlib.ExitStack()  # held until the first start's migrations are done
        if prefect_database_missing(home):
            self._setup.enter_context(setup_lock("prefect-database"))
        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env |= {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory", "prefect.server.api.server:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_ends_with_parent)  # fmt: skip
        atexit.register(self.stop)
        os.environ["PREFECT_API_URL"] = self.url
        self.ready = False

    def wait(self) -> None:
        """Returns once the API answers; a server that exits or never answers is a one-line error naming
        its log (exit status 1, as for any service)."""
        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 300))  # Prefect's own setting
        deadline = time.monotonic() + timeout
        try:
            while not self.ready:
                if self.process.poll() is not None:
                    raise ServiceUnavailable(f"the temporary Prefect API exited with status {self.process.returncode}; see {self.log}")
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(f"the temporary Prefect API did not answer within {timeout:.0f} s; see {self.log}")
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                        self.ready = r.status == 200
                if not self.ready:
                    time.sleep(0.1)
        finally:
            self._setup.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_api: TemporaryApi | None = None


def start_temporary_api(home: Path) -> TemporaryApi | None:
    """The temporary API, started once per process; None when a Prefect server is configured."""
    global _api
    if _api is None and not os.environ.get("PREFECT_API_URL"):
        _api = TemporaryApi(home)
    return _api
