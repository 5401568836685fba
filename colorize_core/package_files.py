"""A model package's files read without loading its weights: its identity (the checksum) and its
decoding defaults, for the registry lookup and restore's plan in a process that never runs the network."""

from __future__ import annotations

import hashlib
import json
import os

from .config import from_dict
from .settings import DecodeConfig

PACKAGE_FILES = ("weights.pt", "config.json", "bins.npz")


def package_checksum(directory: str | None = None, *, paths: dict[str, str] | None = None) -> str:
    """sha256 over the package's three files (names and bytes): the model's identity, whatever name
    and version a registry gives it. From a directory, or from the paths by role as `save_package` returns."""
    files = [os.path.join(directory, f) for f in PACKAGE_FILES] if directory else [paths[k] for k in ("weights", "config", "bins")]
    h = hashlib.sha256()
    for name, path in zip(PACKAGE_FILES, files):
        h.update(name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def read_decode(directory: str) -> DecodeConfig:
    """The package's own decoding defaults, without loading its weights."""
    with open(os.path.join(directory, "config.json")) as f:
        return from_dict(DecodeConfig, json.load(f)["decode"])
