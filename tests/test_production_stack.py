"""The production stack for real: PostgreSQL under Prefect and MLflow, model artifacts in S3, a key per
role, Dask over mutual TLS, authentication everywhere. Every service refuses an unauthenticated client;
the pipeline, promotion, deployments and two process workers run on it; a backup brings a fresh stack
back to the same champion and deployments; the compose file is the rendering of the same definition."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import s3fs
import yaml
from PIL import Image

from stacks.production import Ports, backup, compose_text, load_secrets, production_down, production_up
from stacks.services import pid_alive
from tasks.ports import free_port
from tasks.state import environ_kept
from tests.test_stack_e2e import last_json, mlflow_client, training_photos_and_pipeline

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_compose_file_is_the_rendering_of_the_production_definition():
    committed = (REPO / "infra" / "docker-compose.yml").read_text()
    assert committed == compose_text(), "regenerate: .venv/bin/python -m stacks.production > infra/docker-compose.yml"
    doc = yaml.safe_load(committed)
    published = [p for s in doc["services"].values() for p in s.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published), "loopback only"
    assert "PREFECT_SERVER_API_AUTH_STRING" in doc["services"]["prefect-server"]["environment"]
    assert "--app-name basic-auth" in doc["services"]["mlflow"]["command"]
    assert "--protocol tls" in doc["services"]["dask-scheduler"]["command"] and "-s3.config=" in doc["services"]["s3"]["command"]
    assert set(doc["volumes"]) == {v.split(":")[0] for s in doc["services"].values() for v in s.get("volumes", []) if not v.startswith(".")}


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    root = Path(tempfile.mkdtemp(prefix="colorize-production-"))  # not under pytest's 0700 folder: PostgreSQL runs as its own user
    root.chmod(0o755)
    ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
    t0 = time.time()
    info = production_up(root / "stack", ports)
    print(f"production stack up in {time.time() - t0:.1f} s")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "AWS_", "COLORIZE_"))}, **info["env"]}
    env.update(
        COLORIZE_HOME=str(root / "client"), PREFECT_HOME=str(root / "client" / "prefect"), COLORIZE_REPO=str(REPO), DO_NOT_TRACK="true"
    )
    try:
        yield root, ports, info, env
    finally:
        production_down(root / "stack")
        assert not [s for s in info["services"].values() if pid_alive(s["pid"])], "a process of the stack is still alive"
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def identity(user: str, password: str):
    """This process's MLflow client as `user` for a while."""
    with environ_kept(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")):
        os.environ.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
        yield


def run(cmd: list[str], env: dict, timeout: int = 900) -> str:
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd[:4])} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def _status(url: str, method: str = "GET", data: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_service_refuses_an_unauthenticated_client(prod, tmp_path):
    root, ports, info, env = prod
    assert _status(f"http://127.0.0.1:{ports.prefect}/api/flows/filter", "POST", b"{}") == 401
    assert _status(f"http://127.0.0.1:{ports.mlflow}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    anon = s3fs.S3FileSystem(anon=True, client_kwargs={"endpoint_url": env["COLORIZE_S3_ENDPOINT"]}, skip_instance_cache=True)
    with pytest.raises(PermissionError):
        anon.ls("archive")
    with pytest.raises(PermissionError):  # a role's key opens its own bucket only
        s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], client_kwargs={"endpoint_url": env["COLORIZE_S3_ENDPOINT"]},
                          skip_instance_cache=True).ls("mlflow-artifacts")  # fmt: skip
    from distributed import Client
    from distributed.security import Security

    from stacks.production import _tls_files

    with pytest.raises(OSError):  # no TLS at all
        Client(env["COLORIZE_DASK_ADDRESS"].replace("tls://", "tcp://"), timeout=10)
    _tls_files(tmp_path / "foreign")  # a certificate from another CA
    foreign = Security(tls_ca_file=str(tmp_path / "foreign" / "ca.pem"), tls_client_cert=str(tmp_path / "foreign" / "client.pem"),
                       tls_client_key=str(tmp_path / "foreign" / "client.key"), require_encryption=True)  # fmt: skip
    with pytest.raises(OSError):
        Client(env["COLORIZE_DASK_ADDRESS"], security=foreign, timeout=10)


def test_pipeline_promotion_deployments_and_two_workers(prod, tmp_path):
    root, ports, info, env = prod
    sec = load_secrets(root / "stack")
    fs, photos, pipe = training_photos_and_pipeline(env)
    result = last_json(run(pipe, env))
    assert result["promoted"]
    from mlflow.exceptions import MlflowException

    version = result["model"].rsplit("/", 1)[1]
    with identity("reader", sec.users["reader"]):  # only the pipeline's identity, which registered the model, may move its alias
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|403|Permission"):
            mlflow_client(env).set_registered_model_alias("colorizer", "champion", version)
    admin = s3fs.S3FileSystem(key=sec.s3["admin"][0], secret=sec.s3["admin"][1], client_kwargs={"endpoint_url": env["COLORIZE_S3_ENDPOINT"]},
                              skip_instance_cache=True)  # fmt: skip
    assert [p for p in admin.find("mlflow-artifacts") if p.endswith("weights.pt")], "model artifacts live in the bucket"

    # deployments; two runs taken from the pool by two process workers at the same time
    run([str(BIN / "prefect"), "work-pool", "create", "colorize-process", "--type", "process"], env)
    run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml"], env)
    for part, names in (("a", ("grace_hopper.jpg", "china.jpg")), ("b", ("chelsea.png", "coffee.png"))):
        for name in names:
            buf = io.BytesIO()
            Image.open(io.BytesIO(photos[name])).convert("L").save(buf, "PNG")
            fs.pipe(f"archive/incoming/{part}/{name.split('.')[0]}.png", buf.getvalue())
        run([str(BIN / "prefect"), "deployment", "run", "restore/archive-restoration", "--param", f"source=s3://archive/incoming/{part}",
             "--param", f"dest=s3://archive/restored-{part}"], env)  # fmt: skip
    outs: list = [None, None]

    def worker(i: int) -> None:
        outs[i] = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "colorize-process", "--run-once"], env=env, cwd=REPO,
                                 capture_output=True, text=True, timeout=900)  # fmt: skip

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    said = "\n".join(o.stdout[-2000:] + o.stderr[-2000:] for o in outs)
    assert all(o.returncode == 0 for o in outs), said
    assert "database is locked" not in said and "OperationalError" not in said
    fs.invalidate_cache()
    for part in ("a", "b"):
        assert len(fs.glob(f"archive/restored-{part}/colorizer-v{version}/*.png")) == 2, said
        assert fs.glob(f"archive/restored-{part}/_manifests/*.parquet")

    # back up, start a fresh stack (a new database cluster) from the backup: same champion, same deployments
    dumps = backup(root / "stack", ports, tmp_path / "backup")
    assert all(p.stat().st_size > 0 for p in dumps)
    production_down(root / "stack")
    shutil.rmtree(root / "stack" / "pg")
    production_up(root / "stack", ports, restore_from=tmp_path / "backup")
    with identity("pipeline", sec.users["pipeline"]):
        champion = mlflow_client(env).get_model_version_by_alias("colorizer", "champion")
    assert champion.version == version
    listed = run([str(BIN / "prefect"), "deployment", "ls"], env)
    assert "archive-restoration" in listed and "museum-reprocess" in listed
    json.dumps(info["services"])  # still serialisable for `stack status`


def running_services(stack: Path) -> dict:
    """The services running now (an earlier test may have restarted the stack from a backup)."""
    return json.loads((stack / "stack.json").read_text())["services"]


def _behind_a_private_folder(path: Path, stack: Path) -> bool:
    """Whether a folder between the stack's own and `path` lets nobody else through."""
    return any(p.stat().st_mode & 0o077 == 0 for p in path.parents if p != stack and stack in p.parents)


def _tree_pids(pid: int) -> set[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return {pid} | {c.pid for c in p.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def test_the_stack_keeps_its_secrets_to_its_user_and_listens_on_loopback_only(prod):
    """Every file of the stack is its user's alone (secrets, certificates' keys, databases' passwords,
    SeaweedFS volumes, logs: 0600, folders 0700; the stack's own folder 0711 where PostgreSQL runs as
    `postgres` and must pass through); no process of the stack listens on another address than
    127.0.0.1; no command line carries a password (`ps` shows them to every user)."""
    import psutil

    root, _, info, _ = prod
    stack = root / "stack"
    loose = []
    for path in [stack, *stack.rglob("*")]:
        st = path.lstat()
        if path.is_symlink() or not (path.is_file() or path.is_dir()) or st.st_uid != os.getuid():
            continue  # sockets; PostgreSQL's own files (its user's, 0700 / 0600 by initdb)
        mode = st.st_mode & 0o777
        allowed = (0o711 if os.geteuid() == 0 else 0o700) if path == stack else 0o700 if path.is_dir() else 0o600
        if mode & ~allowed and not _behind_a_private_folder(path, stack):
            loose.append(f"{oct(mode)} {path.relative_to(root)}")
    # SeaweedFS sets 0644 on its volume-info files whatever the umask: its folder keeps everyone else out
    assert (stack / "seaweedfs").stat().st_mode & 0o077 == 0
    assert not loose, "readable by others:\n" + "\n".join(loose[:30])
    pids = set().union(*(_tree_pids(s["pid"]) for s in running_services(stack).values()))
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening), [(c.pid, c.laddr) for c in listening if c.laddr.ip != "127.0.0.1"]
    sec = load_secrets(stack)
    passwords = [sec.postgres, sec.prefect_db, sec.mlflow_db, sec.mlflow_admin, sec.prefect_auth.split(":", 1)[1], *sec.users.values()]
    for pid in pids:
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:
            continue
        assert not [p for p in passwords if p in cmdline], f"a password on the command line of {cmdline[:120]}"


def test_each_role_holds_only_its_own_keys(prod):
    """The reader has its own S3 key; the Dask workers, whose environment any client can read, hold
    no MLflow password, Prefect auth string or other role's key; registering (the bundled model too)
    is the pipeline identity's job: a reader that runs first on a fresh stack owns nothing."""
    from tasks.cluster import connect

    root, _, info, env = prod
    sec = load_secrets(root / "stack")
    reader = info["reader_env"]
    assert reader["MLFLOW_TRACKING_USERNAME"] == "reader" and reader["AWS_ACCESS_KEY_ID"] not in (env["AWS_ACCESS_KEY_ID"], sec.s3["admin"][0])
    with connect(env["COLORIZE_DASK_ADDRESS"], env, timeout=60) as client:
        workers = client.run(lambda: dict(os.environ))
    assert len(workers) == 2
    others = [sec.prefect_auth, sec.mlflow_admin, *sec.users.values(), *(sec.s3[r][1] for r in sec.s3 if r != "worker")]
    for worker_env in workers.values():
        held = json.dumps(worker_env)
        assert not [s for s in others if s in held], "a worker holds another role's secret"
        assert worker_env["AWS_ACCESS_KEY_ID"] == sec.s3["worker"][0]
    from tasks.registry import register_bundled_default

    with environ_kept(reader), identity("reader", sec.users["reader"]):
        os.environ.update(reader)  # a restore run's identity on a registry with no champion yet
        with pytest.raises(LookupError, match="the pipeline identity's job"):
            register_bundled_default("colorizer-reader-probe")
    with identity("pipeline", sec.users["pipeline"]):
        assert not mlflow_client(env).search_registered_models("name='colorizer-reader-probe'"), "the reader registered nothing"


def test_only_the_object_stores_s3_gateway_is_reachable(prod):
    """SeaweedFS's master, volume and filer answer plain HTTP without credentials (read weights, write
    or delete outputs, drop a collection): from the host, only the S3 gateway, which checks each
    role's key, may be reached."""
    import psutil

    root, ports, info, env = prod
    weed = psutil.Process(running_services(root / "stack")["seaweedfs"]["pid"])
    args = dict(a.lstrip("-").split("=", 1) for a in weed.cmdline() if a.startswith("-") and "=" in a)
    internal = [int(args[k]) for k in ("master.port", "volume.port", "filer.port", "admin.port")]
    assert internal and int(args["s3.port"]) == ports.s3
    for port in internal:
        for p in (port, port + 10000):  # each part's HTTP port and its gRPC twin
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=3)
    assert _status(f"http://127.0.0.1:{ports.s3}/archive") == 403, "the gateway answers, and refuses the anonymous"
