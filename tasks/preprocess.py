"""Preprocessing tasks: hash and shard images on Dask workers, commit shards atomically.

The worker function (`build_shard`) is a plain function that Dask ships to its workers; the
Prefect tasks around it add retries, logging and the commit protocol.
"""

from __future__ import annotations

import io
import math
import posixpath
import time
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from colorize_core.imageio import ImageReadError
from colorize_core.shards import PreprocessConfig, check_schema, content_hash, make_row, rows_to_table
from tasks import logger as get_run_logger
from tasks.cluster import connect, map_as_completed
from tasks.storage import atomic_write, filesystem, full_url, join, known_by_stamp, read_ahead, remove_tree, retrying

QUARANTINE_SCHEMA = pa.schema([("source", pa.string()), ("id", pa.string()), ("reason", pa.string()), ("run_id", pa.string())])
# `_sources/run-<id>.parquet`: each file a run read, with its listing stamp and its content's id, so
# that a later run settles an unchanged file from the listing alone (`settled_by_listing`)
SOURCES_SCHEMA = pa.schema([("source", pa.string()), ("stamp", pa.string()), ("id", pa.string()), ("run_id", pa.string())])


@dataclass
class PreprocessSummary:
    run_id: str
    seen: int = 0
    written: int = 0
    duplicates: int = 0  # same content as another file of this run
    already_present: int = 0  # content already in committed shards
    previously_quarantined: int = 0  # same file and content as an earlier run's quarantined item
    quarantined: int = 0
    not_images: int = 0  # files without an image extension, listed but not read
    not_read: int = 0  # of those already present or quarantined: settled by an unchanged listing stamp
    shards: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        rows = [(k, v) for k, v in asdict(self).items() if k != "shards"]
        table = "\n".join(f"| {k} | {v if not isinstance(v, float) else f'{v:.1f}'} |" for k, v in rows)
        return f"# Preprocess run {self.run_id}\n\n| what | count |\n|---|---|\n{table}\n| shards | {len(self.shards)} |\n"


# ---------------------------------------------------------------- worker functions (run on Dask)


def _limit_threads() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: no oversubscription


def build_shard(items: list[tuple[str, str | None]], staging_url: str, cfg: PreprocessConfig, known: "KnownContent") -> dict:
    """Reads each file once: hashes it, skips content already in the shards (or quarantined from this
    very file before) and repeats within the chunk, decodes the rest into one Parquet shard at
    `staging_url`. Items are (uri, split or None); bad inputs are returned, not raised, and every
    file read is returned with its content's id (`read`)."""
    _limit_threads()
    rows, bad, counts, seen, read = [], [], {"already_present": 0, "previously_quarantined": 0, "duplicates": 0}, set(), []
    splits = dict(items)
    for uri, data in read_ahead(splits):  # the next files arrive while this one is decoded
        cid, split = None, splits[uri]
        try:
            if isinstance(data, Exception):
                raise data
            cid = content_hash(data)
            read.append((uri, cid))
            if cid in known.ids:
                counts["already_present"] += 1
            elif (uri, cid) in known.quarantined:
                counts["previously_quarantined"] += 1
            elif cid in seen:
                counts["duplicates"] += 1
            else:
                seen.add(cid)
                rows.append(make_row(data, uri, cfg, content_id=cid, split=split))
        except ImageReadError as e:
            bad.append({"source": uri, "id": cid, "reason": e.reason})
        except Exception as e:  # anything else is still this item's problem, not the batch's
            bad.append({"source": uri, "id": cid, "reason": f"{type(e).__name__}: {e}"})
    if rows:
        table = rows_to_table(rows)
        retrying(lambda: atomic_write(staging_url, lambda f: pq.write_table(table, f, compression="zstd")), staging_url)
    return {"staging": staging_url if rows else None, "ids": [r["id"] for r in rows], "bad": bad, "counts": counts, "read": read}


def chunks_for(items: list, rows_per_shard: int, workers: int, smallest: int = 4) -> list[list]:
    """Items in chunks of at most `rows_per_shard` (a shard each) that shrink towards the end: each
    takes 1/(2 x workers) of what is left (guided self-scheduling), so a collection of any size ends
    on small chunks and no worker idles while another finishes a big one, with few tasks before."""
    chunks, i = [], 0
    share = 2 * workers if workers > 1 else 1  # a lone worker waits for no one: whole shards, fewest tasks
    while i < len(items):
        n = max(smallest, min(rows_per_shard, math.ceil((len(items) - i) / share)))
        chunks.append(items[i : i + n])
        i += n
    return chunks


@dataclass(frozen=True)
class KnownContent:
    ids: frozenset[str]  # content already in committed shards
    quarantined: frozenset[tuple[str, str]]  # (source, id) already quarantined by an earlier run


# ---------------------------------------------------------------- Prefect tasks (client side)


def committed_shards(shards_url: str) -> list[str]:
    """Completed shards: top-level `*.parquet` files (staging and bookkeeping live under `_`)."""
    fs, root = filesystem(shards_url)
    if not fs.exists(root):
        return []
    paths = fs.glob(join(root, "*.parquet"))
    return sorted(full_url(fs, p) for p in paths if not posixpath.basename(p).startswith(("_", ".")))


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def known_content(shards_url: str) -> KnownContent:
    """Ids already in committed shards, and (source, id) pairs already quarantined."""
    ids: set[str] = set()
    for url in committed_shards(shards_url):
        fs, path = filesystem(url)
        with fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            check_schema(pf.schema_arrow, url)
            ids.update(pf.read(columns=["id"]).column("id").to_pylist())
    quarantined: set[tuple[str, str]] = set()
    fs, root = filesystem(join(shards_url, "_quarantine"))
    if fs.exists(root):
        for path in fs.glob(join(root, "*.parquet")):
            with fs.open(path, "rb") as f:
                t = pq.read_table(f, columns=["source", "id"])
            quarantined.update(zip(t.column("source").to_pylist(), t.column("id").to_pylist()))
    return KnownContent(frozenset(ids), frozenset(quarantined))


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def recorded_sources(shards_url: str) -> dict[tuple[str, str], str]:
    """{(file, its listing stamp): its content's id} for every file an earlier run read."""
    fs, root = filesystem(join(shards_url, "_sources"))
    recorded: dict[tuple[str, str], str] = {}
    if fs.exists(root):
        for path in fs.glob(join(root, "*.parquet")):
            with fs.open(path, "rb") as f:
                t = pq.read_table(f, columns=["source", "stamp", "id"])
            recorded.update(zip(zip(t.column("source").to_pylist(), t.column("stamp").to_pylist()), t.column("id").to_pylist()))
    return recorded


def settled_by_listing(
    images: dict[str, str], recorded: dict[tuple[str, str], str], known: KnownContent
) -> tuple[list[str], dict[str, int]]:
    """(files to read, counts of those settled without reading): a file listed with the stamp a run
    recorded when it read it (`storage.known_by_stamp`), whose content is still in the shards (or
    quarantined from this file), has nothing new to give."""
    by_stamp = known_by_stamp(images, recorded)
    todo, counts = [], {"already_present": 0, "previously_quarantined": 0}
    for uri in images:
        cid = by_stamp.get(uri)
        if cid is not None and cid in known.ids:
            counts["already_present"] += 1
        elif cid is not None and (uri, cid) in known.quarantined:
            counts["previously_quarantined"] += 1
        else:  # new, changed, or its content left the shards since: read it
            todo.append(uri)
    return todo, counts


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def record_sources(shards_url: str, run_id: str, read: list[tuple[str, str]], stamps: dict[str, str]) -> str | None:
    """The files this run read, with their stamps from the listing: written after the shards are
    committed, so a record never speaks for content that is not there."""
    if not read:
        return None
    rows = [{"source": u, "stamp": stamps.get(u), "id": cid, "run_id": run_id} for u, cid in read]
    table = pa.Table.from_pylist(rows, schema=SOURCES_SCHEMA)
    url = join(shards_url, "_sources", f"run-{run_id}.parquet")
    atomic_write(url, lambda f: pq.write_table(table, f, compression="zstd"))
    return url


@task(cache_policy=NONE)
def shard_on_dask(
    chunks: list[list[tuple[str, str | None]]], shards_url: str, run_id: str, cfg: PreprocessConfig, known: KnownContent, scheduler: str
) -> tuple[list[str], list[dict], dict[str, int], list[tuple[str, str]]]:
    """Builds shards on the workers (the scheduler hands each about one chunk at a time), and commits
    each one as soon as it is whole: moved from the run's staging prefix to its final name, after
    dropping rows whose content another chunk of this run committed first (deduplication at commit).
    Returns (committed shards, bad items, counts, (file, content id) of every file read)."""
    logger = get_run_logger()
    committed, bad, read, counts, ids = [], [], [], {"already_present": 0, "previously_quarantined": 0, "duplicates": 0}, set(known.ids)
    with connect(scheduler, set_as_default=False) as client:
        [known_f] = client.scatter([known], broadcast=True)
        jobs = ((c, join(shards_url, "_staging", run_id, f"part-{run_id}-{i:05d}.parquet"), cfg, known_f) for i, c in enumerate(chunks))
        for _, result in map_as_completed(client, build_shard, jobs):
            bad.extend(result["bad"])
            read.extend(result["read"])
            for k, v in result["counts"].items():
                counts[k] += v
            repeats = ids.intersection(result["ids"])
            counts["duplicates"] += len(repeats)
            ids.update(result["ids"])
            if result["staging"] and len(repeats) < len(result["ids"]):
                committed.append(commit_shard(result["staging"], shards_url, drop=repeats))
                logger.info("committed %s (%d rows)", committed[-1], len(result["ids"]) - len(repeats))
    counts["written"] = len(ids) - len(known.ids)
    return sorted(committed), bad, counts, read


def commit_shard(staging_url: str, shards_url: str, drop: set[str] = frozenset()) -> str:
    """Moves a whole shard into place; rows whose id is in `drop` are filtered out first (rare: the same
    content in two chunks of one run)."""
    fs, src = filesystem(staging_url)
    _, root = filesystem(shards_url)
    dst = join(root, posixpath.basename(src))
    if drop:
        with fs.open(src, "rb") as f:
            t = pq.read_table(f)
        t = t.filter(pa.compute.invert(pa.compute.is_in(t.column("id"), pa.array(sorted(drop)))))
        atomic_write(full_url(fs, dst), lambda f: pq.write_table(t, f, compression="zstd"))
        fs.rm(src)
    else:
        fs.mv(src, dst)
    return full_url(fs, dst)


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def write_quarantine(shards_url: str, run_id: str, bad: list[dict]) -> str | None:
    if not bad:
        return None
    table = pa.Table.from_pylist([dict(b, run_id=run_id) for b in bad], schema=QUARANTINE_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    url = join(shards_url, "_quarantine", f"run-{run_id}.parquet")
    atomic_write(url, buf.getvalue())
    logger = get_run_logger()
    for b in bad:
        logger.warning("quarantined %s: %s", b["source"], b["reason"])
    return url


def folder_split(uri: str, source: str) -> str | None:
    """'train' or 'val' when the first folder under the source says so, else None."""
    rel = uri.split(source.rstrip("/").split("://")[-1], 1)[-1].lstrip("/")
    first = rel.split("/", 1)[0] if "/" in rel else ""
    return first if first in ("train", "val") else None


@task(cache_policy=NONE)
def clean_staging(shards_url: str, run_id: str) -> None:
    remove_tree(join(shards_url, "_staging", run_id))


@task(cache_policy=NONE)
def publish_summary(summary: PreprocessSummary, started: float) -> PreprocessSummary:
    summary.seconds = time.time() - started
    create_markdown_artifact(key="preprocess-summary", markdown=summary.markdown(), description="Preprocess run summary")
    get_run_logger().info(summary.markdown())
    return summary


def read_shard_table(url: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        check_schema(pf.schema_arrow, url)
        return pf.read(columns=columns)
