"""Model registry: log a colorizer package as a pyfunc, register it, resolve URIs back to packages."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.cache_policies import NONE

from colorize_core.package import ColorizerPackage, load_package, save_package
from colorize_core.package_files import package_checksum
from tasks import model_resolve
from tasks.model_ref import ModelRef
from tasks.model_resolve import (
    BUNDLED_TAG,
    DEFAULT_MODEL_URI,
    PACKAGE_TAG,
    bundled_is_newer,
    local_copy,
    resolve_model,
    split_model_uri,
    verify_copy,
)
from tasks.state import setup_lock
from tasks.tracking import configure_mlflow, state_dir, tracking_uri

CORE_DIR = str(Path(__file__).resolve().parents[1] / "colorize_core")
PYFUNC_CODE = str(Path(__file__).resolve().parent / "pyfunc_model.py")
log = logging.getLogger(__name__)


def log_package(pkg: ColorizerPackage, registered_name: str | None = None) -> tuple[str, str | None]:
    """Logs the package as a pyfunc model in the active run; registers it when a name is given.

    Returns (model URI, registered version or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_package(tmp, pkg)
        checksum = package_checksum(paths=paths)
        with _notices_to_log():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=PYFUNC_CODE,
                artifacts=paths,
                code_paths=[CORE_DIR],  # the model carries the library that runs it
                pip_requirements=["torch", "numpy", "numba", "pillow", "pyarrow", "scikit-learn"],
                registered_model_name=registered_name,
                metadata={"bins_checksum": pkg.bins.checksum, "decode": json.dumps(pkg.decode.__dict__), PACKAGE_TAG: checksum},
            )
    version = str(info.registered_model_version) if registered_name else None
    if version:
        MlflowClient().set_model_version_tag(registered_name, version, PACKAGE_TAG, checksum)
    return info.model_uri, version


@contextlib.contextmanager
def _notices_to_log():
    """MLflow prints its registration notices ("Successfully registered model ...") straight to stderr;
    they go to its logger instead (the command line's log file)."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        yield
    for line in out.getvalue().splitlines():
        logging.getLogger("mlflow").info(line)


def resolve_version(uri: str) -> tuple[str, str] | None:
    """(name, version) of a `models:/name@alias` or `models:/name/N` URI, None for other URIs."""
    if not uri.startswith("models:/"):
        return None
    name, version, alias = split_model_uri(uri)
    if alias is None:
        return name, version
    configure_mlflow()  # a command's first MLflow call: left unset, MLflow reads (and makes) ./mlflow.db of the user's folder
    return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)


def register_package(pkg: ColorizerPackage, name: str, source: str, alias: str | None = None, tags: dict | None = None) -> str:
    """Logs the package in a run of its own, registers it as a new version of `name`, tags it, and
    points `alias` at it when given; returns the version."""
    configure_mlflow()
    with mlflow.start_run(run_name=f"register-{name}"):
        mlflow.set_tag("source", source)
        _, version = log_package(pkg, name)
    client = MlflowClient()
    for k, v in (tags or {}).items():
        client.set_model_version_tag(name, version, k, v)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return version


def may_register() -> bool:
    """In production only the pipeline identity registers models: whoever registers a model owns it,
    and the owner alone may move its aliases."""
    from tasks.credentials import truthy

    return not truthy("COLORIZE_PRODUCTION") or os.environ.get("MLFLOW_TRACKING_USERNAME", "pipeline") == "pipeline"


def register_bundled_default(name: str = "colorizer", alias: str = "champion") -> tuple[str, str]:
    """Registers the model that ships with the project as a version of `name` and points `alias` at
    it: the first restoration on a fresh machine colorizes with it, offline."""
    bundled = model_resolve.BUNDLED_MODEL_DIR  # read when called: tests put another release's model there
    if not os.path.exists(os.path.join(bundled, "weights.pt")):
        raise LookupError(
            f"no model version behind {DEFAULT_MODEL_URI} in the registry at {tracking_uri()}, and no bundled default "
            "model: train one (colorize train) or import the published weights (colorize import-weights)"
        )
    if not may_register():
        raise LookupError(
            f"no model version behind {DEFAULT_MODEL_URI} in the registry at {tracking_uri()}: registering the bundled model is the "
            f"pipeline identity's job (`colorize stack up --production` does it), not {os.environ.get('MLFLOW_TRACKING_USERNAME')}'s"
        )
    source = "bundled default model (colorize_core/default_model)"
    tags = {"bundled": "true", BUNDLED_TAG: package_checksum(bundled)}
    return name, register_package(load_package(bundled), name, source, alias, tags)


def newer_bundled_default(name: str, version: str) -> tuple[str, str] | None:
    """A champion nobody chose (the bundled default of an earlier release) follows the bundled model
    this release ships: registered as a new version and made champion; the old version stays. A
    champion that was promoted or set by hand is never touched."""
    if not bundled_is_newer(MlflowClient().get_model_version(name, version).tags) or not may_register():
        return None
    try:
        return register_bundled_default(name)
    except MlflowException as e:  # an identity that may only read (production restore runs) keeps the champion it finds
        log.warning("this release's bundled model differs from the champion %s v%s, but could not be registered: %s", name, version, e)
        return None


def import_reference_checkpoint(checkpoint: str, name: str, alias: str | None = None) -> str:
    """A released state dict of the ECCV16 or the SIGGRAPH17 layout (told apart by its keys), checked
    layer by layer, registered with the canonical 313 bins."""
    import torch

    from colorize_core.bins import canonical_bins
    from colorize_core.models import ModelConfig, check_reference_checkpoint
    from colorize_core.package import build_model
    from colorize_core.siggraph17 import check_siggraph17_checkpoint, is_siggraph17

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    layout = "siggraph17" if is_siggraph17(state) else "eccv16"
    (check_siggraph17_checkpoint if layout == "siggraph17" else check_reference_checkpoint)(state)  # ValueError naming the first bad key
    bins = canonical_bins()
    model = build_model(ModelConfig(layout, hint_input=layout == "siggraph17"), torch.from_numpy(bins.centres))
    model.load_state_dict(state)
    pkg = ColorizerPackage(model.eval(), bins, meta={"source": f"reference {layout.upper()} release"})
    return register_package(pkg, name, f"imported reference checkpoint {os.path.basename(checkpoint)}", alias)


def resolve_registered(uri: str) -> ModelRef:
    """`resolve_model` through MLflow (tasks.model_resolve): the version's copy made when it is not
    local yet, and the bundled model registered as champion when the registry has none."""
    configure_mlflow()
    with setup_lock() if uri == DEFAULT_MODEL_URI else contextlib.nullcontext():  # the bundled model registered once
        name, version = _champion_or(uri)
    try:
        mv = MlflowClient().get_model_version(name, version)
    except MlflowException:
        raise LookupError(f"model {uri} is not in the registry at {tracking_uri()}: {_versions_of(name)}") from None
    local = local_copy(name, version, mv.run_id, mv.source, mv.creation_timestamp)
    expected = mv.tags.get(PACKAGE_TAG)
    if not (local / "weights.pt").exists():
        downloaded = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}")
        tmp = Path(tempfile.mkdtemp(dir=state_dir()))
        shutil.copytree(os.path.join(downloaded, "artifacts"), tmp / "pkg")
        verify_copy(tmp / "pkg", expected, uri)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp / "pkg", local)  # whole or absent
        except OSError:  # another process put its verified copy there first
            if not (local / "weights.pt").exists():
                raise
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelRef(uri, str(local), name, version, verify_copy(local, expected, uri))


def _versions_of(name: str) -> str:
    try:
        versions = sorted((int(v.version) for v in MlflowClient().search_model_versions(f"name='{name}'")))
    except MlflowException:
        versions = []
    return f"its versions of {name} are {', '.join(map(str, versions))}" if versions else f"it has no model named {name}"


def _champion_or(uri: str) -> tuple[str, str]:
    """(name, version) of `uri`; for the default URI, the bundled model registered as champion when the
    registry has none, or when it ships a newer one than the bundled champion."""
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
    elif uri == DEFAULT_MODEL_URI and (newer := newer_bundled_default(*nv)):
        print(
            f"The champion was the bundled default model of an earlier release ({nv[0]} version {nv[1]}, kept in the registry); "
            f"registered this release's bundled model as version {newer[1]} and set it as champion."
        )
        nv = newer
    return nv


resolve = task(resolve_model, name="resolve_model", retries=2, retry_delay_seconds=3, cache_policy=NONE)
