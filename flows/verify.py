"""Verify flow: what a C2PA reader says of one output or of every output under a destination."""

from __future__ import annotations

import dataclasses
import io
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from tasks.credentials import STATUSES, Verdict, trust_anchors, verify_url
from tasks.state import state_dir
from tasks.storage import atomic_write, exists, join, list_files


@task(cache_policy=NONE)
def verify_all(urls: list[str], anchors: bytes) -> list[Verdict]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda u: verify_url(u, anchors), urls))


@flow(name="verify", log_prints=True)
def verify_flow(target: str) -> dict:
    """`target`: one file, or a destination (its outputs: every image not under `_` folders and not an
    uncertainty map). For a destination the verdicts are also written as Parquet under DEST/_verification/."""
    images, _ = list_files(target)
    outputs = [u for u in images if not u.endswith(".uncertainty.png")]
    verdicts = verify_all(outputs, trust_anchors(state_dir()))
    recorded = None
    if exists(join(target, "_manifests")):
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([dataclasses.asdict(v) for v in verdicts]), buf)
        recorded = join(target, "_verification", f"{time.strftime('%Y%m%dT%H%M%S')}.parquet")
        atomic_write(recorded, buf.getvalue())
    counts = {s: sum(v.status == s for v in verdicts) for s in STATUSES}
    create_table_artifact(
        key="content-credentials", table=[dataclasses.asdict(v) for v in verdicts], description=f"Content Credentials under {target}"
    )
    return {"verdicts": verdicts, "counts": counts, "recorded": recorded}
