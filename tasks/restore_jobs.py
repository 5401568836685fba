"""What restore's client hands its workers, in a module without torch: the job every batch shares,
what is settled already, the hints, and the worker's two entry points by name (the client pickles
them by reference, and only a worker imports `tasks.restore_worker`, with torch and the model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from colorize_core.hints import Hint, hints_id, parse_hints
from colorize_core.imageio import ReaderConfig
from colorize_core.settings import ColorizeConfig
from tasks.credentials import SigningIdentity
from tasks.layout import DestLayout
from tasks.manifest import ManifestRow
from tasks.model_ref import ModelRef
from tasks.storage import read_bytes, retrying


@dataclass(frozen=True)
class RestoreJob:
    """What every batch of a run shares (shipped once per batch to the workers)."""

    source_root: str
    layout: DestLayout
    ref: ModelRef
    cfg: ColorizeConfig  # resolved: the decode is the package's unless the caller chose one
    reader: ReaderConfig
    run_id: str
    review: bool = True  # thumbnails and previews for the run's review page
    signing: SigningIdentity | None = None  # Content Credentials in every output (None: none)
    hints: dict[str, tuple[Hint, ...]] = field(default_factory=dict)  # curators' hints by key under SOURCE

    def hints_of(self, source: str) -> tuple[tuple[Hint, ...], str | None]:
        """(the source's hints, their id), ((), None) for none."""
        hints = self.hints.get(self.layout.relative_key(self.source_root, source), ()) if self.hints else ()
        return hints, hints_id(hints) if hints else None

    @property
    def settings(self) -> str:
        return json.dumps(self.cfg.settings(), sort_keys=True)

    def row(self, source: str, content_hash: str | None, **kw) -> ManifestRow:
        r = self.ref
        return ManifestRow(source, content_hash, self.run_id, r.name, r.version, r.sha256, self.settings, folder=self.layout.prefix, **kw)


@dataclass(frozen=True)
class Settled:
    """What the workers check a file's content against once they have read it (shipped once to each)."""

    done: frozenset[str]  # content done before by this model version with these settings
    only: frozenset[str] | None = None  # the run is limited to these contents


def load_hints(hints: str | dict | None) -> dict[str, tuple[Hint, ...]]:
    """Curators' hints from a file (any fsspec URL) or a parsed document; {} for none."""
    if hints is None or (isinstance(hints, dict) and all(isinstance(v, tuple) for v in hints.values())):
        return hints or {}
    return parse_hints(retrying(lambda: read_bytes(hints), hints) if isinstance(hints, str) else hints, str(hints)[:200])


def restore_batch(items: list[str], job: RestoreJob, settled: Settled) -> list[ManifestRow]:
    """On a worker: `tasks.restore_worker.restore_batch`."""
    from tasks.restore_worker import restore_batch

    return restore_batch(items, job, settled)


def warm_worker(ref: ModelRef, size: int) -> str:
    """On a worker: `tasks.restore_worker.warm_worker`."""
    from tasks.restore_worker import warm_worker

    return warm_worker(ref, size)
