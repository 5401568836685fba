"""Model registry: log a colorizer package as a pyfunc, register it, resolve URIs back to packages."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from colorize_core.package import ColorizerPackage, load_package, save_package
from tasks.tracking import configure_mlflow

CORE_DIR = str(Path(__file__).resolve().parents[1] / "colorize_core")
PYFUNC_CODE = str(Path(__file__).resolve().parent / "pyfunc_model.py")
DEFAULT_MODEL_URI = "models:/colorizer@champion"


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
