"""Model URIs resolved to verified local copies, MLflow imported only when it is needed.

Restore's command, `colorize image` and the review server resolve a model before anything else, and
MLflow's import and its SQLite store (about 3 s of CPU on a 2-core AMD EPYC) were most of their start.
With the embedded default (a SQLite file), a version whose verified copy is already local is read
from the registry's own tables: the alias, the version's identity and its tags, read-only, then the
copy checked against the registered checksum as always. Anything else (a server, a first use, a
version not yet copied, a bundled champion that this release replaces) goes through MLflow
(tasks.registry), and reaches the same copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from pathlib import Path

from colorize_core.package_files import package_checksum
from tasks.checks import ModelMismatch
from tasks.model_ref import ModelRef
from tasks.state import state_dir
from tasks.tracking import tracking_uri

DEFAULT_MODEL_URI = "models:/colorizer@champion"
PACKAGE_TAG = "package_sha256"  # on every registered version: what a local copy must match
BUNDLED_TAG = "bundled_sha256"  # on a bundled default's version: the shipped folder it came from
BUNDLED_MODEL_DIR = str(Path(__file__).resolve().parents[1] / "colorize_core" / "default_model")
UNCHECKED_OPT_IN = "COLORIZE_ALLOW_UNCHECKED_MODELS"  # =1: load registered versions that carry no checksum
DELETED = "Deleted_Internal"  # MLflow's stage of a deleted version, whose row it keeps


def resolve_model(uri: str = DEFAULT_MODEL_URI) -> ModelRef:
    """A verified local copy of the model's package, and its name, version and checksum.

    `models:/name@alias`, `models:/name/N` or a package directory. Local copies are keyed by the
    registry and the version's identity (run, source, creation time), never by name and version
    alone, and checked against the checksum recorded at registration: a URI resolved against one
    registry never yields a model from another, nor a reset registry's earlier version N. When the
    registry has no champion yet, the bundled default model is registered and used, and the log says so."""
    if os.path.isdir(uri):
        pkg_meta = read_meta(uri)
        checksum = package_checksum(uri)
        return ModelRef(uri, os.path.abspath(uri), pkg_meta.get("name", "colorizer"), str(pkg_meta.get("version", checksum[:8])), checksum)
    ref = _copied_already(uri)
    if ref is not None:
        return ref
    from tasks.registry import resolve_registered

    return resolve_registered(uri)


def local_copy(name: str, version: str, run_id: str | None, source: str, created: int) -> Path:
    """Where the verified copy of this very version lives in the state folder."""
    identity = hashlib.sha256(f"{tracking_uri()}|{name}|{version}|{run_id}|{source}|{created}".encode()).hexdigest()
    return state_dir() / "models" / f"{name}-v{version}-{identity[:16]}"


def verify_copy(directory: Path, expected: str | None, uri: str) -> str:
    checksum = package_checksum(str(directory))
    if not expected and os.environ.get(UNCHECKED_OPT_IN) != "1":
        raise ModelMismatch(
            f"{uri} has no {PACKAGE_TAG} tag in the registry, so its files cannot be checked: register it with `colorize` "
            f"(which records the checksum), or set {UNCHECKED_OPT_IN}=1 to load it unchecked"
        )
    if expected and checksum != expected:
        raise ModelMismatch(
            f"the local copy of {uri} at {directory} does not match the registry (sha256 {checksum[:12]}, registered {expected[:12]})"
        )
    return checksum


def read_meta(directory: str) -> dict:
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f).get("meta", {})


def bundled_is_newer(tags: dict) -> bool:
    """Whether this release ships another bundled model than the one this champion was registered from
    (only a champion nobody chose, the bundled one, follows it: tasks.registry.newer_bundled_default)."""
    if tags.get("bundled") != "true" or not os.path.exists(os.path.join(BUNDLED_MODEL_DIR, "weights.pt")):
        return False
    return package_checksum(BUNDLED_MODEL_DIR) not in (tags.get(BUNDLED_TAG), tags.get(PACKAGE_TAG))


def split_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of `models:/name/N` (alias None) or `models:/name@alias` (version None)."""
    body = uri.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, None, alias
    name, version = body.rsplit("/", 1)
    return name, version, None


def _copied_already(uri: str) -> ModelRef | None:
    """The embedded registry's version behind `uri` when its verified copy is already local; None for
    whatever MLflow must answer (tables or rows missing, a server, a busy or unreadable file)."""
    registry = tracking_uri()
    if not uri.startswith("models:/") or not registry.startswith("sqlite:///"):
        return None
    db = registry.removeprefix("sqlite:///")
    if not os.path.isfile(db):
        return None
    try:
        name, number, alias = split_model_uri(uri)
        with contextlib.closing(sqlite3.connect(Path(db).resolve().as_uri() + "?mode=ro", uri=True, timeout=10)) as c:
            if alias is None:
                version = int(number)
            else:
                row = c.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
                if row is None:
                    return None
                version = int(row[0])
            row = c.execute(
                "SELECT run_id, source, creation_time FROM model_versions WHERE name = ? AND version = ? AND current_stage != ?",
                (name, version, DELETED),
            ).fetchone()
            tags = dict(c.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", (name, version)))
    except (sqlite3.Error, ValueError):
        return None
    if row is None or (uri == DEFAULT_MODEL_URI and bundled_is_newer(tags)):
        return None
    local = local_copy(name, str(version), *row)
    if not (local / "weights.pt").exists():
        return None
    return ModelRef(uri, str(local), name, str(version), verify_copy(local, tags.get(PACKAGE_TAG), uri))
