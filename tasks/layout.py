"""Where everything lives under a restoration destination: the one place that knows DEST's layout.

DEST/<model>-v<version>/<path under SOURCE>     outputs made with the model's own settings (and
                                                 <name>.uncertainty.png beside them)
DEST/<model>-v<version>-s<hash>/<path>           outputs made with other settings (decode, upsampling,
                                                 size): settings that change the pixels are part of an
                                                 output's identity, so a rerun with other settings never
                                                 replaces what the first one wrote
DEST/_manifests/<run>.parquet                    one manifest per finished run
DEST/_manifests/<run>/part-NNNNN.parquet         per-batch parts while a run is going (a killed run's record)
DEST/_reports/<run>/                             the run's review page, thumbnails, previews, IIIF manifest
DEST/_reports/<run>.png                          the run's contact sheet
DEST/_leases/<model>-v<version>.json             the run that currently writes that model version's outputs
DEST/_decisions/<file>.parquet                   curators' decisions imported from review pages
DEST/_hints/<time>-<n>.json                      curators' colour hints imported from review pages
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

from colorize_core.writer import output_format
from tasks.storage import join


class KeyEscapeError(ValueError):
    pass


def version_folder(name: str, version: str) -> str:
    """The folder under DEST that holds one model version's outputs (colorizer-v3)."""
    return f"{name}-v{version}"


def item_key(content_hash: str, hints_id: str | None) -> str:
    """An item's identity within an output folder: its content, and the curator's hints when given
    (outputs made with hints never stand in for the automatic one, nor for other hints)."""
    return f"{content_hash}+{hints_id}" if hints_id else content_hash


def output_folder(model_folder: str, settings: dict, model_settings: dict) -> str:
    """The folder of a model version's outputs made with `settings` (the resolved colorization settings):
    the plain version folder for the model package's own settings, else one named by their hash."""
    if settings == model_settings:
        return model_folder
    return f"{model_folder}-s{hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class DestLayout:
    dest: str
    prefix: str  # <model>-v<version>

    @property
    def outputs(self) -> str:
        return join(self.dest, self.prefix)

    @property
    def manifests(self) -> str:
        return join(self.dest, "_manifests")

    def run_manifest(self, run_id: str) -> str:
        return join(self.manifests, f"{run_id}.parquet")

    def run_parts(self, run_id: str) -> str:
        return join(self.manifests, run_id)

    def part(self, run_id: str, n: int) -> str:
        return join(self.run_parts(run_id), f"part-{n:05d}.parquet")

    @property
    def reports(self) -> str:
        return join(self.dest, "_reports")

    def report(self, run_id: str) -> str:
        return join(self.reports, run_id)

    def contact_sheet(self, run_id: str) -> str:
        return join(self.reports, f"{run_id}.png")

    @property
    def lease(self) -> str:
        return join(self.dest, "_leases", f"{self.prefix}.json")

    @property
    def decisions(self) -> str:
        return join(self.dest, "_decisions")

    @property
    def hints(self) -> str:
        return join(self.dest, "_hints")

    @staticmethod
    def relative_key(source_root: str, uri: str) -> str:
        """`uri`'s path under SOURCE (its key in a hints file), '' when it is not under it."""
        root, path = source_root.rstrip("/").split("://")[-1], uri.split("://")[-1]
        return posixpath.basename(path) if path == root else path[len(root) :].lstrip("/") if path.startswith(root + "/") else ""

    def output_key(self, source_root: str, uri: str, src_format: str | None = None, hints_id: str | None = None) -> str:
        """DEST/<model>-v<version>/<path relative to SOURCE>, `.hints-<id>` before the extension when
        made with a curator's hints; refuses keys that would escape DEST."""
        root = source_root.rstrip("/").split("://")[-1]
        path = uri.split("://")[-1]
        rel = posixpath.basename(path) if path == root else path[len(root) :].lstrip("/")
        if not path.startswith(root) or rel.startswith("/") or ".." in rel.split("/") or not rel:
            raise KeyEscapeError(f"object key {rel!r} would escape the destination")
        norm = posixpath.normpath(rel)
        if norm.startswith("..") or posixpath.isabs(norm):
            raise KeyEscapeError(f"object key {rel!r} would escape the destination")
        if src_format:
            _, ext = output_format(src_format)
            if ext:
                norm = posixpath.splitext(norm)[0] + ext
        if hints_id:
            stem, ext = posixpath.splitext(norm)
            norm = f"{stem}.hints-{hints_id}{ext}"
        return join(self.outputs, norm)

    @staticmethod
    def content_key(output_key: str, content_hash: str) -> str:
        """Where an output goes when its usual key already holds another file (the source was replaced
        by another scan, or two sources map to one output name): the old file stays."""
        stem, ext = posixpath.splitext(output_key)
        return f"{stem}~{content_hash[:12]}{ext}"

    @staticmethod
    def uncertainty_key(output_key: str) -> str:
        return posixpath.splitext(output_key)[0] + ".uncertainty.png"
