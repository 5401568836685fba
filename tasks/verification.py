"""Verification of outputs' Content Credentials, as a plain function: `colorize verify` answers at
once, with no Prefect API to start (the verify flow wraps the same function for deployments)."""

from __future__ import annotations

import dataclasses
import io
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.credentials import STATUSES, trust_anchors, verify_url
from tasks.state import state_dir
from tasks.storage import atomic_write, exists, join, list_files


def verify_outputs(target: str) -> dict:
    """`target`: one file, or a destination (its outputs: every image not under `_` folders and not an
    uncertainty map). For a destination the verdicts are also written as Parquet under DEST/_verification/."""
    images, _ = list_files(target)
    outputs = [u for u in images if not u.endswith(".uncertainty.png")]
    anchors = trust_anchors(state_dir())
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda u: verify_url(u, anchors), outputs))
    recorded = None
    if exists(join(target, "_manifests")):
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([dataclasses.asdict(v) for v in verdicts]), buf)
        recorded = join(target, "_verification", f"{time.strftime('%Y%m%dT%H%M%S')}.parquet")
        atomic_write(recorded, buf.getvalue())
    counts = {s: sum(v.status == s for v in verdicts) for s in STATUSES}
    return {"verdicts": verdicts, "counts": counts, "recorded": recorded}
