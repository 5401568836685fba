"""Local servers the project starts itself (tests and `colorize stack`): start, health-check, stop by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tasks.ports import free_port


@dataclass
class Service:
    name: str
    pid: int
    url: str
    log: str

    def stop(self, timeout: float = 10.0) -> None:
        stop_pid(self.pid, timeout)


# Dask servers bind to loopback only: even without a dashboard each runs an HTTP server (logs,
# tracebacks, metrics, no authentication) on every interface unless told where
DASK_LOOPBACK = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]  # workers and scheduler


@contextlib.contextmanager
def private_files(root: Path, traversable: bool = False) -> Iterator[None]:
    """Everything this process and the services it starts create meanwhile is its user's alone, from
    the start (umask 077: secret files 0600, folders 0700; no chmod after writing, when another user
    could already have opened the file). `root` itself is 0700, or 0711 where a service running as
    another user (PostgreSQL as `postgres`) must pass through it."""
    old = os.umask(0o077)
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o711 if traversable else 0o700)
        yield
    finally:
        os.umask(old)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pid_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _spawn(name: str, cmd: list[str], log_dir: Path, env: dict | None = None) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ, **(env or {})))
    return proc.pid


def wait_http(url: str, pid: int, timeout: float, name: str, accept=(200,)) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"{name} exited during start-up (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status in accept:
                    return
        except urllib.error.HTTPError as e:
            if e.code in accept:
                return
            last = e
        except OSError as e:
            last = e
        time.sleep(0.3)
    raise TimeoutError(f"{name} not healthy at {url} after {timeout:.0f} s: {last}")


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


PORT_TAKEN = (b"address already in use", b"is not available")  # weed's words: at bind, and at its own check before
GRPC_OFFSET = 10000  # weed serves gRPC on each port + 10000, and refuses a port that is another's + 10000


def _weed_ports(s3_port: int, n: int) -> list[int]:
    """`n` free ports for weed's parts, none of them or their gRPC twins equal to another's."""
    used, picked = {s3_port, s3_port + GRPC_OFFSET}, []
    while len(picked) < n:
        port = free_port()
        if {port, port + GRPC_OFFSET} & used or port + GRPC_OFFSET > 65535:
            continue
        used |= {port, port + GRPC_OFFSET}
        picked.append(port)
    return picked


def weed_mini(data_dir: Path, s3_port: int, buckets: str, *extra: str) -> list[str]:
    """`weed mini` on 127.0.0.1 with its parts' ports picked here. weed refuses a port that is
    another part's + 10000 (CI once picked such a pair), and its admin server takes a fixed 23646
    even with the UI off."""
    master, volume, filer, admin = _weed_ports(s3_port, 4)
    return [
        _bin("weed"), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        "-admin.ui=false", "-webdav=false", f"-s3.port={s3_port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-bucket={buckets}", f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        f"-admin.port={admin}", *extra,
    ]  # fmt: skip


def start_seaweedfs(data_dir: Path, key: str, secret: str, bucket: str, port: int | None = None) -> Service:
    """A real S3 server (SeaweedFS `weed mini`) on 127.0.0.1 that enforces the given credentials."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log, url = data_dir / "logs" / "seaweedfs.log", f"http://127.0.0.1:{port}"
    for attempt in range(3):
        logged = log.stat().st_size if log.exists() else 0
        cmd = weed_mini(data_dir, port, bucket)
        pid = _spawn("seaweedfs", cmd, data_dir / "logs", env={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})
        try:
            wait_http(url, pid, 60, "seaweedfs", accept=(200, 403))
            break
        except (RuntimeError, TimeoutError) as e:  # a port free when picked was taken before weed bound it: pick others
            stop_pid(pid)  # a weed that did not exit holds its other ports and the data folder: never two at once
            said = log.read_bytes()[logged:]
            if attempt == 2 or not any(m in said for m in PORT_TAKEN):
                last = b"\n".join(said.strip().splitlines()[-6:]).decode(errors="replace")
                raise RuntimeError(f"{e}; {log} ends:\n{last}") from None
    _wait_bucket(url, key, secret, bucket, pid)
    return Service("seaweedfs", pid, url, str(data_dir / "logs" / "seaweedfs.log"))


def _wait_bucket(url: str, key: str, secret: str, bucket: str, pid: int, timeout: float = 60) -> None:
    import s3fs

    deadline = time.time() + timeout
    while True:
        try:
            fs = s3fs.S3FileSystem(key=key, secret=secret, client_kwargs={"endpoint_url": url}, skip_instance_cache=True)
            if not fs.exists(bucket):
                fs.mkdir(bucket)
            fs.pipe(f"{bucket}/_health", b"ok")
            fs.rm(f"{bucket}/_health")
            return
        except Exception:
            if time.time() > deadline or not pid_alive(pid):
                raise
            time.sleep(0.5)


def client_env(ports, s3_key: tuple[str, str], hosts: dict[str, str] | None = None, prefect_auth: str | None = None,
               mlflow_login: tuple[str, str] | None = None, tls: str | None = None, signing: str | None = None) -> dict[str, str]:  # fmt: skip
    """What a client of a stack sets, written once for every stack: the local one (loopback, no
    authentication), the production one (an API auth string, a role's login and S3 key, Dask over
    mutual TLS with the files in `tls`, the archive's signing identity in `signing`) and the compose
    file (services by name in `hosts`, secrets as the operator's .env variables)."""
    host = (hosts or {}).get
    env = {"PREFECT_API_URL": f"http://{host('prefect', '127.0.0.1')}:{ports.prefect}/api"}
    env |= {"PREFECT_API_AUTH_STRING": prefect_auth} if prefect_auth else {}
    env["MLFLOW_TRACKING_URI"] = f"http://{host('mlflow', '127.0.0.1')}:{ports.mlflow}"
    env |= {"MLFLOW_TRACKING_USERNAME": mlflow_login[0], "MLFLOW_TRACKING_PASSWORD": mlflow_login[1]} if mlflow_login else {}
    env |= {"COLORIZE_S3_ENDPOINT": f"http://{host('s3', '127.0.0.1')}:{ports.s3}", "AWS_ACCESS_KEY_ID": s3_key[0], "AWS_SECRET_ACCESS_KEY": s3_key[1]}
    env["COLORIZE_DASK_ADDRESS"] = f"{'tls' if tls else 'tcp'}://{host('dask', '127.0.0.1')}:{ports.dask}"
    if tls:
        env |= {"COLORIZE_DASK_TLS_CA": f"{tls}/ca.pem", "COLORIZE_DASK_TLS_CERT": f"{tls}/client.pem", "COLORIZE_DASK_TLS_KEY": f"{tls}/client.key"}
    if signing:
        env |= {"COLORIZE_PRODUCTION": "1", "COLORIZE_C2PA_KEY": f"{signing}/signer.key.pem", "COLORIZE_C2PA_CERT": f"{signing}/signer.chain.pem"}
    return env
