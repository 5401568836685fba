"""Curators' decisions on restored items: imported from a review page's export, kept as Parquet
beside the manifests, read back to limit a later restoration to the rejected items."""

from __future__ import annotations

import csv
import io
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq

from colorize_core.hints import hints_document, parse_hints
from tasks.checks import ArgumentError
from tasks.layout import DestLayout
from tasks.storage import atomic_write, filesystem, join, read_bytes, retrying

DECISIONS = ("approved", "rejected")
SCHEMA = pa.schema(
    [
        (k, pa.string())
        for k in ("content_hash", "source", "name", "decision", "decided_at", "run_id", "model", "model_version", "imported_from")
    ]
)


def parse_decisions(data: bytes, name: str) -> list[dict]:
    """The review page's export, JSON or CSV; a row without a content hash or with another decision
    than approved/rejected is an error naming the row."""
    text = data.decode("utf-8-sig")
    try:
        rows = (
            json.loads(text) if name.lower().endswith(".json") or text.lstrip().startswith("[") else list(csv.DictReader(io.StringIO(text)))
        )
    except (json.JSONDecodeError, csv.Error) as e:
        raise ArgumentError(f"{name}: not a decisions file ({e})") from None
    if not isinstance(rows, list):
        raise ArgumentError(f"{name}: expected a list of decisions")
    out = []
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not r.get("content_hash") or r.get("decision") not in DECISIONS:
            raise ArgumentError(f"{name}: row {i} needs a content_hash and a decision of {' or '.join(DECISIONS)}")
        out.append({k: _cell(r.get(k)) for k in SCHEMA.names} | {"imported_from": name})
    return out


def is_hints(data: bytes) -> bool:
    """Whether an exported file is a hints document (the review page exports hints and decisions apart)."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and "images" in doc and "version" in doc


def import_review_export(export_url: str, dest: str) -> dict:
    """What a review page exports, recorded under DEST: decisions (JSON or CSV) as Parquet under
    DEST/_decisions/, a hints document under DEST/_hints/. A plain function, so `colorize review import`
    answers without a Prefect API (the review-import flow wraps it for deployments)."""
    data = retrying(lambda: read_bytes(export_url), export_url)
    if is_hints(data):
        url, n = import_hints(data, export_url, dest)
        return {"hints": n, "recorded": url}
    url, n = import_decisions(data, export_url, dest)
    return {"decisions": n, "recorded": url}


def import_hints(data: bytes, name: str, dest: str) -> tuple[str, int]:
    """Checks a hints document whole, then keeps it under DEST/_hints/ (`restore --hints imported`
    reads the latest); returns where, and how many images it gives hints for."""
    hints = parse_hints(data, name)
    url = join(DestLayout(dest, "").hints, f"{time.strftime('%Y%m%dT%H%M%S')}-{len(hints)}.json")
    retrying(lambda: atomic_write(url, json.dumps(hints_document(hints), indent=1).encode(), replace=False), url)
    return url, len(hints)


def latest_hints(dest: str) -> str | None:
    """The hints imported last into DEST (files sort by import time), if any."""
    fs, root = filesystem(DestLayout(dest, "").hints)
    found = sorted(fs.glob(join(root, "*.json"))) if fs.exists(root) else []
    return fs.unstrip_protocol(found[-1]) if found else None


def _cell(value) -> str:
    """A cell as the page wrote it: the quote that kept a formula-like text from spreadsheets comes off."""
    text = str(value or "")
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@", "\t", "\r") else text


def import_decisions(data: bytes, name: str, dest: str) -> tuple[str, int]:
    rows = parse_decisions(data, name)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buf)
    url = join(DestLayout(dest, "").decisions, f"{time.strftime('%Y%m%dT%H%M%S')}-{len(rows)}.parquet")
    retrying(lambda: atomic_write(url, buf.getvalue()), url)
    return url, len(rows)


def latest_decisions(dest: str) -> dict[str, str]:
    """content hash -> the latest decision on it, over every import (files sort by import time)."""
    fs, root = filesystem(DestLayout(dest, "").decisions)
    out: dict[str, tuple[str, str]] = {}
    if fs.exists(root):
        for path in sorted(fs.glob(join(root, "*.parquet"))):
            with fs.open(path, "rb") as f:
                for r in pq.read_table(f).to_pylist():
                    if r["content_hash"] not in out or r["decided_at"] >= out[r["content_hash"]][0]:
                        out[r["content_hash"]] = (r["decided_at"], r["decision"])
    return {h: d for h, (_, d) in out.items()}


def rejected(dest: str) -> list[str]:
    return sorted(h for h, d in latest_decisions(dest).items() if d == "rejected")
