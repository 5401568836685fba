"""The restoration manifest: one row type, one schema, written as Parquet beside the outputs."""

from __future__ import annotations

import dataclasses
import io
import json
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.layout import item_key, version_folder
from tasks.storage import atomic_write, filesystem, retrying


@dataclass
class ManifestRow:
    source: str
    content_hash: str | None
    run_id: str
    model_name: str
    model_version: str
    model_sha256: str  # checksum of the model package's files: which model, whatever its name says
    decode: str  # JSON of the decode and colorization settings
    status: str = "failed"  # done | skipped | failed
    error: str | None = None
    output: str | None = None
    seconds: float = 0.0
    width: int | None = None
    height: int | None = None
    doubt: float | None = None  # mean normalised entropy of the prediction: 0 sure .. 1 unsure
    uncertainty: str | None = None  # key of the uncertainty map, when made
    thumbnail: str | None = None  # review page pictures, made on the worker from the image in memory
    preview: str | None = None
    grey_thumbnail: str | None = None
    grey_preview: str | None = None
    source_stamp: str | None = None  # the source's size and ETag or mtime when listed (`storage.stamp`)
    folder: str | None = None  # the outputs' folder under DEST (`layout.output_folder`); older rows: the version's
    hints: str | None = None  # id of the curator's hints that made the output (`hints.hints_id`); None: automatic

    @property
    def item(self) -> str:
        """What makes an output what it is, within its folder: the content, and the hints when given."""
        return item_key(self.content_hash or "", self.hints)

    def settings(self) -> dict:
        return json.loads(self.decode)

    @property
    def version_folder(self) -> str:
        return self.folder or version_folder(self.model_name, self.model_version)


_ARROW = {"str": pa.string(), "float": pa.float64(), "int": pa.int32()}
MANIFEST_SCHEMA = pa.schema([(f.name, _ARROW[f.type.split(" |")[0]]) for f in dataclasses.fields(ManifestRow)])
_DEFAULTS = {f.name: "" if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(ManifestRow)}


def table(rows: list[ManifestRow]) -> pa.Table:
    return pa.Table.from_pylist([dataclasses.asdict(r) for r in rows], schema=MANIFEST_SCHEMA)


def write_manifest(url: str, rows: list[ManifestRow]) -> str:
    """Atomically, retried through a storage outage: a run's record must not be lost to a hiccup."""
    buf = io.BytesIO()
    pq.write_table(table(rows), buf)
    retrying(lambda: atomic_write(url, buf.getvalue()), url)
    return url


def read_manifest(url: str) -> list[ManifestRow]:
    """Rows of one manifest file; columns added since it was written read as empty."""
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        t = pq.read_table(f)
    return [ManifestRow(**{k: r.get(k, d) for k, d in _DEFAULTS.items()}) for r in t.to_pylist()]


def read_manifests(manifests_url: str) -> list[ManifestRow]:
    """Every row under DEST/_manifests: finished runs, and the batch parts of killed or running ones."""
    fs, root = filesystem(manifests_url)
    rows: list[ManifestRow] = []
    if fs.exists(root):
        for path in sorted(fs.find(root)):
            if path.endswith(".parquet") and not posixpath.basename(path).startswith("_tmp"):
                rows += read_manifest(fs.unstrip_protocol(path))
    return rows
