"""Model registry: log a colorizer package as a pyfunc, register it, resolve URIs back to packages."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.cache_policies import NONE

from colorize_core.package import ColorizerPackage, load_package, save_package
from tasks.tracking import configure_mlflow, state_dir, tracking_uri

CORE_DIR = str(Path(__file__).resolve().parents[1] / "colorize_core")
PYFUNC_CODE = str(Path(__file__).resolve().parent / "pyfunc_model.py")
DEFAULT_MODEL_URI = "models:/colorizer@champion"
BUNDLED_MODEL_DIR = str(Path(__file__).resolve().parents[1] / "colorize_core" / "default_model")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """A model resolved on the client: a local package directory, and its registry identity."""

    uri: str
    directory: str
    name: str
    version: str

    @property
    def prefix(self) -> str:
        return f"{self.name}-v{self.version}"


def log_package(pkg: ColorizerPackage, registered_name: str | None = None) -> tuple[str, str | None]:
    """Logs the package as a pyfunc model in the active run; registers it when a name is given.

    Returns (model URI, registered version or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_package(tmp, pkg)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=PYFUNC_CODE,
            artifacts=paths,
            code_paths=[CORE_DIR],  # the model carries the library that runs it
            pip_requirements=["torch", "numpy", "pillow", "pyarrow", "scikit-learn"],
            registered_model_name=registered_name,
            metadata={"bins_checksum": pkg.bins.checksum, "decode": json.dumps(pkg.decode.__dict__)},
        )
    version = str(info.registered_model_version) if registered_name else None
    return info.model_uri, version


def resolve_version(uri: str) -> tuple[str, str] | None:
    """(name, version) of a `models:/name@alias` or `models:/name/N` URI, None for other URIs."""
    if not uri.startswith("models:/"):
        return None
    body = uri[len("models:/") :]
    client = MlflowClient()
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, version = body.rsplit("/", 1)
    return name, version


def load_colorizer(uri: str) -> ColorizerPackage:
    """A package from a registry URI (`models:/name@alias`, `models:/name/N`), a run URI, or a
    package directory. The weights load with weights_only=True: no code is unpickled."""
    if os.path.isdir(uri):
        return load_package(uri)
    configure_mlflow()
    nv = resolve_version(uri)
    target = f"models:/{nv[0]}/{nv[1]}" if nv else uri
    local = mlflow.artifacts.download_artifacts(artifact_uri=target)
    pkg = load_package(os.path.join(local, "artifacts"))
    if nv:
        pkg.meta = dict(pkg.meta, name=nv[0], version=nv[1])
    return pkg


def has_model(uri: str) -> bool:
    """True when a registry URI resolves to a model version (alias set, version present)."""
    try:
        configure_mlflow()
        return resolve_version(uri) is not None
    except MlflowException:
        return False


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def register_bundled_default(name: str = "colorizer", alias: str = "champion") -> tuple[str, str]:
    """Registers the model that ships with the project as a version of `name` and points `alias` at
    it: the first restoration on a fresh machine colorizes with it, offline."""
    if not os.path.exists(os.path.join(BUNDLED_MODEL_DIR, "weights.pt")):
        raise LookupError(
            f"no model version behind {DEFAULT_MODEL_URI} in the registry at {tracking_uri()}, and no bundled default "
            "model: train one (colorize train) or import the published weights (colorize import-weights)"
        )
    pkg = load_package(BUNDLED_MODEL_DIR)
    with mlflow.start_run(run_name="bundled-default-model"):
        mlflow.set_tag("source", "bundled default model (colorize_core/default_model)")
        _, version = log_package(pkg, name)
    client = MlflowClient()
    client.set_model_version_tag(name, version, "bundled", "true")
    client.set_registered_model_alias(name, alias, version)
    return name, version


def resolve_model(uri: str = DEFAULT_MODEL_URI) -> ModelRef:
    """A local copy of the model's package, and its name and version.

    `models:/name@alias`, `models:/name/N` or a package directory. When the registry has no
    champion yet, the bundled default model is registered and used, and the log says so."""
    if os.path.isdir(uri):
        pkg = load_package(uri)
        return ModelRef(uri, os.path.abspath(uri), pkg.name, pkg.meta.get("version", pkg.bins.checksum[:8]))
    configure_mlflow()
    try:
        nv = resolve_version(uri)
    except MlflowException:
        nv = None
    if nv is None:
        if uri != DEFAULT_MODEL_URI:
            raise LookupError(f"model {uri} is not in the registry at {tracking_uri()}")
        nv = register_bundled_default()
        print(
            f"The registry had no {DEFAULT_MODEL_URI}: registered the bundled default model as {nv[0]} version {nv[1]} and set it as champion."
        )
    name, version = nv
    local = state_dir() / "models" / f"{name}-v{version}"
    if not (local / "weights.pt").exists():
        downloaded = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}")
        tmp = Path(tempfile.mkdtemp(dir=state_dir()))
        shutil.copytree(os.path.join(downloaded, "artifacts"), tmp / "pkg")
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / "pkg", local)  # whole or absent
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelRef(uri, str(local), name, version)


resolve = task(resolve_model, name="resolve_model", retries=2, retry_delay_seconds=3, cache_policy=NONE)
