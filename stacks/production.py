"""The production stack, defined once: PostgreSQL, Prefect on it, MLflow on it with its artifacts in
S3 and basic authentication, SeaweedFS with a key per role, a Dask scheduler and workers over mutual
TLS. `colorize stack up --production` starts these services here from Debian's and PyPI's packages;
`render_compose()` writes the same services, ports, variables and volumes as `infra/docker-compose.yml`
(a test checks that the committed file is the rendering), so the two cannot drift apart.

Everything listens on 127.0.0.1 here (loopback, in the compose file too, unless an operator publishes a
port on purpose), and every service refuses a client without credentials: Prefect's API auth string,
MLflow's basic-auth app, S3 keys (none anonymous), Dask's TLS client certificates.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from stacks.local import QUIET
from stacks.local import StackPorts as Ports
from stacks.services import DASK_LOOPBACK, _bin, _spawn, client_env, pid_alive, private_files, stop_pid, wait_http, weed_mini

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUCKETS = ("archive", "mlflow-artifacts")
DATABASES = ("prefect", "mlflow", "mlflow_auth")

# S3 identities: what each role may touch (SeaweedFS actions, scoped to buckets)
S3_ROLES = {
    "admin": ["Admin", "Read", "Write", "List", "Tagging"],
    "mlflow": ["Read:mlflow-artifacts", "Write:mlflow-artifacts", "List:mlflow-artifacts"],
    "pipeline": ["Read:archive", "Write:archive", "List:archive"],
    "reader": ["Read:archive", "Write:archive", "List:archive"],  # restore runs: collections in, outputs out
    "worker": ["Read:archive", "Write:archive", "List:archive"],  # Dask workers read sources and write outputs
}
# MLflow identities besides the admin: the pipeline trains, registers and promotes (it owns the models
# it registers, so it alone may move their aliases); the reader only reads (restore runs resolve models)
MLFLOW_USERS = ("pipeline", "reader")


@dataclass
class Secrets:
    """Generated when a stack is first brought up (mode 0600 in its folder), never in the repository."""

    postgres: str
    prefect_db: str
    mlflow_db: str
    prefect_auth: str  # user:password for Prefect's API
    mlflow_admin: str
    mlflow_flask: str
    users: dict[str, str]  # MLflow user -> password
    s3: dict[str, tuple[str, str]]  # role -> (access key, secret key)

    @classmethod
    def generate(cls) -> "Secrets":
        def token() -> str:
            return secrets.token_urlsafe(18)

        return cls(
            postgres=token(),
            prefect_db=token(),
            mlflow_db=token(),
            prefect_auth=f"colorize:{token()}",
            mlflow_admin=token(),
            mlflow_flask=token(),
            users={u: token() for u in MLFLOW_USERS},
            s3={role: (f"{role}{secrets.token_hex(4)}", token()) for role in S3_ROLES},
        )


def seaweed_identities(sec: Secrets) -> dict:
    return {
        "identities": [
            {"name": role, "credentials": [{"accessKey": sec.s3[role][0], "secretKey": sec.s3[role][1]}], "actions": actions}
            for role, actions in S3_ROLES.items()
        ]
    }


def mlflow_auth_ini(sec: Secrets, ports: Ports) -> str:
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = postgresql+psycopg2://mlflow:{sec.mlflow_db}@127.0.0.1:{ports.postgres}/mlflow_auth\n"
        "admin_username = admin\n"
        f"admin_password = {sec.mlflow_admin}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def role_env(sec: Secrets, ports: Ports, tls: Path, role: str = "pipeline") -> dict[str, str]:
    """What a production deployment sets for a client of the stack in `role` (pipeline or reader):
    each role its own S3 key and login (one leaked is one revoked)."""
    return client_env(ports, sec.s3[role], prefect_auth=sec.prefect_auth, mlflow_login=(role, sec.users[role]), tls=str(tls),
                      signing=str(tls.parent / "c2pa"))  # fmt: skip


def _tls_files(folder: Path) -> None:
    """A CA and certificates for the scheduler, the workers and clients (mutual TLS)."""
    from tasks import x509

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = x509.new_key(), x509.name("colorize dask CA")
    ca = x509.certificate(ca_name, ca_key, ca_name, ca_key, 825, x509.ca_extensions(ca_key, with_usage=False))
    (folder / "ca.pem").write_bytes(x509.pem(ca))
    for who in ("scheduler", "worker", "client"):
        key = x509.new_key()
        cert = x509.certificate(x509.name(f"colorize dask {who}"), key, ca.subject, ca_key, 825, x509.loopback_names())
        (folder / f"{who}.pem").write_bytes(x509.pem(cert))
        (folder / f"{who}.key").write_bytes(x509.key_pem(key))  # 0600: the stack's files are private from creation


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as Debian's `postgres` user then (the cluster's folder is theirs)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def ensure_postgres() -> None:
    """PostgreSQL from Debian's packages, installed when missing."""
    if (PG_BIN / "initdb").exists():
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], check=True, stdout=subprocess.DEVNULL)


def _psql(sec: Secrets, ports: Ports, sql: str, db: str = "postgres") -> None:
    env = dict(os.environ, PGPASSWORD=sec.postgres)
    subprocess.run(
        [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(ports.postgres), "-U", "colorize", "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True, env=env, capture_output=True,
    )  # fmt: skip


def start_postgres(root: Path, sec: Secrets, ports: Ports, logs: Path) -> int:
    """An unprivileged cluster in `root/pg`, on 127.0.0.1 only, password authentication for everyone."""
    ensure_postgres()
    data = root / "pg"
    if os.geteuid() == 0 and subprocess.run(_as_postgres(["test", "-x", str(root)]), capture_output=True).returncode != 0:
        raise RuntimeError(
            f"PostgreSQL runs as the `postgres` user, which cannot reach {root}: put the stack's state under a folder others may traverse"
        )
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        pw = root / "pg-superuser"
        pw.write_text(sec.postgres)
        if os.geteuid() == 0:  # the cluster's folder and the one-off password file belong to `postgres`
            shutil.chown(data, "postgres")
            shutil.chown(pw, "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "colorize", f"--pwfile={pw}", "--auth=scram-sha-256", "-E", "UTF8"]),
                       check=True, capture_output=True)  # fmt: skip
        pw.unlink()
    cmd = _as_postgres([str(PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(ports.postgres), "-k", str(data)])
    pid = _spawn("postgres", cmd, logs)
    deadline = time.time() + 60
    while subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(ports.postgres)], capture_output=True).returncode != 0:
        if time.time() > deadline or not pid_alive(pid):
            raise RuntimeError(f"PostgreSQL did not start (see {logs / 'postgres.log'})")
        time.sleep(0.3)
    return pid


def create_databases(sec: Secrets, ports: Ports) -> None:
    for role, pw in (("prefect", sec.prefect_db), ("mlflow", sec.mlflow_db)):
        _psql(
            sec,
            ports,
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN PASSWORD '{pw}'; END IF; END $$;",
        )
    existing = subprocess.run(
        [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(ports.postgres), "-U", "colorize", "-d", "postgres", "-tAc", "SELECT datname FROM pg_database"],
        env=dict(os.environ, PGPASSWORD=sec.postgres), capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for db, owner in (("prefect", "prefect"), ("mlflow", "mlflow"), ("mlflow_auth", "mlflow")):
        if db not in existing:
            _psql(sec, ports, f"CREATE DATABASE {db} OWNER {owner}")


def start_mlflow_users(sec: Secrets, ports: Ports) -> None:
    """The pipeline and reader identities, created by the admin through MLflow's own API."""
    import base64

    auth = base64.b64encode(f"admin:{sec.mlflow_admin}".encode()).decode()
    for user, pw in sec.users.items():
        req = urllib.request.Request(
            f"http://127.0.0.1:{ports.mlflow}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": user, "password": pw}).encode(),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(req, timeout=30).read()
        except urllib.error.HTTPError as e:
            if "already exists" not in e.read().decode(errors="replace") and e.code != 409:
                raise


def load_secrets(root: Path) -> Secrets:
    """The stack's secrets; a role added since they were made gets its key now (written back)."""
    raw = json.loads((root / "secrets.json").read_text())
    sec = Secrets(**{**raw, "s3": {k: tuple(v) for k, v in raw["s3"].items()}})
    missing = set(S3_ROLES) - set(sec.s3)
    if missing:
        fresh = Secrets.generate()
        sec.s3.update({role: fresh.s3[role] for role in missing})
        (root / "secrets.json").write_text(json.dumps(asdict(sec)))
    return sec


def worker_env(sec: Secrets, ports: Ports) -> dict[str, str]:
    """What a Dask worker of the stack holds: object storage for the collections, with its own key,
    and nothing else. Any client of the scheduler can read a worker's environment (`client.run`), so
    no MLflow password, Prefect auth string or pipeline key is put there."""
    return {
        "COLORIZE_S3_ENDPOINT": f"http://127.0.0.1:{ports.s3}",
        "AWS_ACCESS_KEY_ID": sec.s3["worker"][0],
        "AWS_SECRET_ACCESS_KEY": sec.s3["worker"][1],
        "COLORIZE_PRODUCTION": "1",
    }



def backup(root: Path, ports: Ports, folder: Path) -> list[Path]:
    """pg_dump of every database of the stack (Prefect: deployments, runs; MLflow: runs, registry,
    aliases, users) into `folder`; model artifacts stay in the S3 bucket, which is backed up as objects."""
    sec = load_secrets(root)
    with private_files(folder):
        return _dump(sec, ports, folder)


def _dump(sec: "Secrets", ports: Ports, folder: Path) -> list[Path]:
    out = []
    for db in DATABASES:
        path = folder / f"{db}.dump"
        subprocess.run([str(PG_BIN / "pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", str(ports.postgres), "-U", "colorize", "-d", db, "-f", str(path)],
                       check=True, env=dict(os.environ, PGPASSWORD=sec.postgres), capture_output=True)  # fmt: skip
        out.append(path)
    return out


def restore_databases(sec: Secrets, ports: Ports, folder: Path) -> None:
    for db in DATABASES:
        subprocess.run([str(PG_BIN / "pg_restore"), "--clean", "--if-exists", "-h", "127.0.0.1", "-p", str(ports.postgres), "-U", "colorize",
                        "-d", db, str(folder / f"{db}.dump")], check=True, env=dict(os.environ, PGPASSWORD=sec.postgres), capture_output=True)  # fmt: skip


def start_object_storage(weed: list[str], port: int, logs: Path, record) -> None:
    """SeaweedFS with only its S3 gateway reachable. Its master, volume and filer serve HTTP without
    credentials (weights read, outputs written or deleted with plain curl, collections dropped): as
    root, `weed mini` runs in a network namespace of its own, where those ports answer nobody on the
    host, and `stacks.forward` brings the gateway's port alone to the host's 127.0.0.1. Without
    root (no namespace to make) they stay on 127.0.0.1, and the log says so."""
    if os.geteuid() != 0:
        print("SeaweedFS: not root, so its internal ports stay on 127.0.0.1 (any local user reaches them); run the stack as root")
        record("seaweedfs", _spawn("seaweedfs", weed, logs, env=QUIET), f"http://127.0.0.1:{port}")
        return
    pid = _spawn("seaweedfs", ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *weed], logs, env=QUIET)
    record("seaweedfs", pid, f"(its own network namespace) port {port}")
    netns, host = f"/proc/{pid}/ns/net", os.readlink("/proc/self/ns/net")
    deadline = time.time() + 30
    while os.readlink(netns) == host:  # unshare has not made the namespace yet
        if time.time() > deadline or not pid_alive(pid):
            raise RuntimeError(f"SeaweedFS did not start in a network namespace of its own (see {logs / 'seaweedfs.log'})")
        time.sleep(0.05)
    gateway = [sys.executable, "-m", "stacks.forward", str(port), netns, str(port)]
    record("seaweedfs-gateway", _spawn("seaweedfs-gateway", gateway, logs), f"http://127.0.0.1:{port}")


def production_up(root: Path, ports: Ports = Ports(), restore_from: Path | None = None) -> dict:
    """Starts every service of the production stack, health-checked; returns services and client
    environments. `restore_from`: a folder of `backup`, loaded into the databases before Prefect and
    MLflow start (a fresh stack brought back to the same deployments, registry and champion). Every
    file of the stack is its user's alone from the moment it is made (`private_files`)."""
    with private_files(root, traversable=os.geteuid() == 0):  # as root, PostgreSQL runs as `postgres`
        return _start(root, ports, restore_from)


def _start(root: Path, ports: Ports, restore_from: Path | None) -> dict:
    from stacks.local import record_services, wait_workers
    from tasks.cluster import dask_env_vars

    logs = root / "logs"
    secrets_file = root / "secrets.json"
    if secrets_file.exists():
        sec = load_secrets(root)
    else:
        sec = Secrets.generate()
        secrets_file.write_text(json.dumps(asdict(sec)))
    tls = root / "tls"
    if not (tls / "ca.pem").exists():
        _tls_files(tls)
    if not (root / "c2pa" / "signer.key.pem").exists():
        from tasks.credentials import make_chain

        (root / "c2pa").mkdir(exist_ok=True)
        key, chain = make_chain(os.environ.get("COLORIZE_ARCHIVE_NAME", "colorize-archive production"))
        (root / "c2pa" / "signer.chain.pem").write_bytes(chain)
        (root / "c2pa" / "signer.key.pem").write_bytes(key)
    services: dict[str, dict] = {}
    record = record_services(
        root, services, lambda: {"pipeline": role_env(sec, ports, tls), "reader": role_env(sec, ports, tls, "reader")}
    )
    try:
        record("postgres", start_postgres(root, sec, ports, logs), f"postgresql://127.0.0.1:{ports.postgres}")
        create_databases(sec, ports)
        if restore_from is not None:
            restore_databases(sec, ports, restore_from)
        (root / "s3.json").write_text(json.dumps(seaweed_identities(sec)))
        weed = weed_mini(root / "seaweedfs", ports.s3, ",".join(BUCKETS), f"-s3.config={root / 's3.json'}")
        (root / "seaweedfs").mkdir(exist_ok=True)
        start_object_storage(weed, ports.s3, logs, record)
        prefect_env = {
            **QUIET,
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_API_URL": "",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://prefect:{sec.prefect_db}@127.0.0.1:{ports.postgres}/prefect",
            "PREFECT_SERVER_API_AUTH_STRING": sec.prefect_auth,
        }
        prefect = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(ports.prefect)]
        record("prefect", _spawn("prefect", prefect, logs, env=prefect_env), f"http://127.0.0.1:{ports.prefect}/api")
        (root / "mlflow_auth.ini").write_text(mlflow_auth_ini(sec, ports))
        mlflow_env = {
            **QUIET,
            "MLFLOW_AUTH_CONFIG_PATH": str(root / "mlflow_auth.ini"),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": sec.mlflow_flask,
            "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
            "AWS_ACCESS_KEY_ID": sec.s3["mlflow"][0],
            "AWS_SECRET_ACCESS_KEY": sec.s3["mlflow"][1],
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # in the environment, which only this user can read, not on the command line, which `ps` shows everyone
            "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg2://mlflow:{sec.mlflow_db}@127.0.0.1:{ports.postgres}/mlflow",
        }
        mlflow = [
            _bin("mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(ports.mlflow), "--workers", "2",
            "--artifacts-destination", "s3://mlflow-artifacts/",
        ]  # fmt: skip
        record("mlflow", _spawn("mlflow", mlflow, logs, env=mlflow_env), f"http://127.0.0.1:{ports.mlflow}")
        tls_args = ["--tls-ca-file", str(tls / "ca.pem")]
        scheduler = [_bin("dask"), "scheduler", "--port", str(ports.dask), "--protocol", "tls", *DASK_LOOPBACK,
                     *tls_args, "--tls-cert", str(tls / "scheduler.pem"), "--tls-key", str(tls / "scheduler.key")]  # fmt: skip
        record(
            "dask-scheduler", _spawn("dask-scheduler", scheduler, logs, env={**QUIET, **dask_env_vars()}), f"tls://127.0.0.1:{ports.dask}"
        )
        workers_env = {**QUIET, **dask_env_vars(), **worker_env(sec, ports)}
        for i in range(2):
            worker = [_bin("dask"), "worker", f"tls://127.0.0.1:{ports.dask}", "--nthreads", "1", "--nworkers", "1", *DASK_LOOPBACK,
                      "--name", f"worker-{i}", *tls_args, "--tls-cert", str(tls / "worker.pem"), "--tls-key", str(tls / "worker.key")]  # fmt: skip
            record(f"dask-worker-{i}", _spawn(f"dask-worker-{i}", worker, logs, env=workers_env), f"tls://127.0.0.1:{ports.dask}")
        wait_http(f"http://127.0.0.1:{ports.s3}", services["seaweedfs"]["pid"], 120, "seaweedfs", accept=(200, 403))
        wait_http(f"http://127.0.0.1:{ports.prefect}/api/health", services["prefect"]["pid"], 180, "prefect server", accept=(200, 401))
        wait_http(f"http://127.0.0.1:{ports.mlflow}/health", services["mlflow"]["pid"], 180, "mlflow server", accept=(200, 401))
        start_mlflow_users(sec, ports)
        wait_workers(role_env(sec, ports, tls), 2)
    except BaseException:
        production_down(root)
        raise
    return {"services": services, "env": role_env(sec, ports, tls), "reader_env": role_env(sec, ports, tls, "reader"), "secrets": sec}


def production_down(root: Path) -> list[str]:
    path = root / "stack.json"
    if not path.exists():
        return []
    services = json.loads(path.read_text())["services"]
    for name in reversed(list(services)):
        stop_pid(services[name]["pid"], timeout=20)
    path.unlink()
    return list(services)


# ---------------------------------------------------------------- the same stack as a compose file

IMAGES = {"postgres": "postgres:15", "s3": "chrislusf/seaweedfs:4.48", "prefect": "prefecthq/prefect:3.9.1-python3.11"}
VOLUMES = ("postgres-data", "s3-data")


def _published(port: int) -> str:
    """Ports are published on loopback only: an operator who exposes one does so on purpose."""
    return f"127.0.0.1:{port}:{port}"


COMPOSE_HOSTS = {"prefect": "prefect-server", "mlflow": "mlflow", "s3": "s3", "dask": "dask-scheduler"}


def compose_client_env(ports: Ports = Ports()) -> dict[str, str]:
    """The pipeline's variables as the compose file sets them: services by name, secrets from the operator's .env."""
    return client_env(ports, ("${S3_PIPELINE_KEY:?set S3_PIPELINE_KEY}", "${S3_PIPELINE_SECRET:?set S3_PIPELINE_SECRET}"), COMPOSE_HOSTS,
                      "${PREFECT_AUTH_STRING:?set PREFECT_AUTH_STRING}", ("pipeline", "${MLFLOW_PIPELINE_PASSWORD:?set MLFLOW_PIPELINE_PASSWORD}"),
                      "/run/secrets/tls", "/run/secrets/c2pa")  # fmt: skip


def render_compose(ports: Ports = Ports()) -> dict:
    """infra/docker-compose.yml: the services production_up starts, as containers."""
    from tasks.cluster import dask_env_vars

    build = {"context": "..", "dockerfile": "infra/Dockerfile"}
    secrets_dir = "./secrets"  # made by the operator (or copied from `colorize stack up --production`'s folder); never committed
    tls_args = "--tls-ca-file /run/secrets/tls/ca.pem"
    env = compose_client_env(ports)
    return {
        "x-colorize-env": env,
        "services": {
            "postgres": {
                "image": IMAGES["postgres"],
                "environment": {
                    "POSTGRES_USER": "colorize",
                    "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}",
                    "PREFECT_DB_PASSWORD": "${PREFECT_DB_PASSWORD:?set PREFECT_DB_PASSWORD}",
                    "MLFLOW_DB_PASSWORD": "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}",
                },  # fmt: skip
                "volumes": ["postgres-data:/var/lib/postgresql/data", "./postgres-init.sh:/docker-entrypoint-initdb.d/init.sh:ro"],
                "healthcheck": {"test": ["CMD-SHELL", "pg_isready -U colorize"], "interval": "5s", "retries": 20},
            },
            "s3": {
                "image": IMAGES["s3"],
                "command": f"server -s3 -dir=/data -s3.port={ports.s3} -s3.config=/run/secrets/s3.json",
                "volumes": ["s3-data:/data", f"{secrets_dir}/s3.json:/run/secrets/s3.json:ro"],
                "ports": [_published(ports.s3)],
            },
            "prefect-server": {
                "image": IMAGES["prefect"],
                "command": f"prefect server start --host 0.0.0.0 --port {ports.prefect}",
                "environment": {
                    "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://prefect:${PREFECT_DB_PASSWORD}@postgres:5432/prefect",
                    "PREFECT_SERVER_API_AUTH_STRING": "${PREFECT_AUTH_STRING:?set PREFECT_AUTH_STRING}",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                },
                "depends_on": {"postgres": {"condition": "service_healthy"}},
                "ports": [_published(ports.prefect)],
            },
            "mlflow": {
                "build": build,
                "command": f"mlflow server --app-name basic-auth --host 0.0.0.0 --port {ports.mlflow} "
                "--backend-store-uri postgresql+psycopg2://mlflow:${MLFLOW_DB_PASSWORD}@postgres:5432/mlflow --artifacts-destination s3://mlflow-artifacts/",
                "environment": {
                    "MLFLOW_AUTH_CONFIG_PATH": "/run/secrets/mlflow_auth.ini",
                    "MLFLOW_FLASK_SERVER_SECRET_KEY": "${MLFLOW_FLASK_SECRET:?set MLFLOW_FLASK_SECRET}",
                    "MLFLOW_S3_ENDPOINT_URL": f"http://s3:{ports.s3}",
                    "AWS_ACCESS_KEY_ID": "${S3_MLFLOW_KEY:?set S3_MLFLOW_KEY}",
                    "AWS_SECRET_ACCESS_KEY": "${S3_MLFLOW_SECRET:?set S3_MLFLOW_SECRET}",
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                },
                "volumes": [f"{secrets_dir}/mlflow_auth.ini:/run/secrets/mlflow_auth.ini:ro"],
                "depends_on": {"postgres": {"condition": "service_healthy"}, "s3": {"condition": "service_started"}},
                "ports": [_published(ports.mlflow)],
            },
            "dask-scheduler": {
                "build": build,
                "command": f"dask scheduler --host 0.0.0.0 --port {ports.dask} --protocol tls --no-dashboard {tls_args} "
                "--tls-cert /run/secrets/tls/scheduler.pem --tls-key /run/secrets/tls/scheduler.key",
                "environment": dask_env_vars(),
                "volumes": [f"{secrets_dir}/tls:/run/secrets/tls:ro"],
                "ports": [_published(ports.dask)],
            },
            "dask-worker": {
                "build": build,
                "command": f"dask worker tls://dask-scheduler:{ports.dask} --nthreads 1 --nworkers 1 --no-dashboard {tls_args} "
                "--tls-cert /run/secrets/tls/worker.pem --tls-key /run/secrets/tls/worker.key",
                "environment": {**env, **dask_env_vars()},
                "volumes": [f"{secrets_dir}/tls:/run/secrets/tls:ro", f"{secrets_dir}/c2pa:/run/secrets/c2pa:ro"],
                "depends_on": ["dask-scheduler"],
                "deploy": {"replicas": 2},
            },
            "prefect-worker": {
                "build": build,
                "command": "prefect worker start --pool colorize-process --type process",
                "environment": env,
                "volumes": [f"{secrets_dir}/tls:/run/secrets/tls:ro", f"{secrets_dir}/c2pa:/run/secrets/c2pa:ro"],
                "depends_on": ["prefect-server", "mlflow", "dask-scheduler"],
            },
            "gpu-training-worker": {
                "build": build,
                "command": "prefect worker start --pool colorize-gpu --type process",
                "environment": env,
                "volumes": [f"{secrets_dir}/tls:/run/secrets/tls:ro"],
                "deploy": {"resources": {"reservations": {"devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}},
                "depends_on": ["prefect-server", "mlflow"],
            },
        },
        "volumes": {v: {} for v in VOLUMES},
    }


COMPOSE_HEADER = """\
# The production stack as containers. RENDERED from stacks/production.py (render_compose), the same
# definition `colorize stack up --production` starts here; a test checks this file is that rendering:
#   .venv/bin/python -m stacks.production > infra/docker-compose.yml
# Secrets come from an .env file beside this one and the ./secrets folder (s3.json, mlflow_auth.ini,
# tls/, c2pa/), never from the repository. Ports are published on 127.0.0.1 only.
"""


def compose_text() -> str:
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data):  # every service spelled out, no YAML anchors
            return True

    return COMPOSE_HEADER + yaml.dump(render_compose(), Dumper=Plain, sort_keys=False, width=200)


if __name__ == "__main__":
    print(compose_text(), end="")
