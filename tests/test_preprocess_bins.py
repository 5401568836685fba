"""Preprocess and bins flows on a real S3 server (SeaweedFS) and local folders, with Dask workers."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from colorize_core.bins import BinConfig, BinSet
from colorize_core.rebalance import ABHistogram
from colorize_core.shards import SCHEMA_VERSION, PreprocessConfig, decode_lab
from tasks.bins import shard_histogram
from tasks.cluster import dask_client
from tasks.preprocess import committed_shards, read_shard_table
from tests.bad_inputs import bad_inputs
from tests.photos import real_photo_bytes


@pytest.fixture(scope="module")
def s3_run(s3, prefect_harness):
    """preprocess -> bins from s3:// to s3://, with a LocalCluster of 2 worker processes."""
    from flows.bins import bins_flow
    from flows.preprocess import preprocess_flow

    fs = s3.fs()
    photos = real_photo_bytes()
    for name, data in photos.items():
        fs.pipe(f"{s3.bucket}/photos/{name}", data)
    fs.pipe(f"{s3.bucket}/photos/copies/china-again.jpg", photos["china.jpg"])  # same content, other name
    for name, data in bad_inputs().items():
        fs.pipe(f"{s3.bucket}/photos/bad/{name}", data)
    shards, out = f"s3://{s3.bucket}/shards", f"s3://{s3.bucket}/bins/grid.npz"
    first = preprocess_flow(f"s3://{s3.bucket}/photos", shards, PreprocessConfig(val_fraction=0.25), rows_per_shard=3)
    report = bins_flow(shards, out)
    return s3, fs, photos, first, report, shards, out


def test_shards_are_written_with_schema_and_dedup(s3_run):
    s3, fs, photos, first, _, shards, _ = s3_run
    assert first.seen == len(photos) + 1 + len(bad_inputs())
    assert first.written == len(photos)
    assert first.duplicates == 1
    assert first.quarantined == len(bad_inputs())
    urls = committed_shards(shards)
    assert len(urls) == len(first.shards) >= 3 and all(u.startswith("s3://") for u in urls)
    rows = [read_shard_table(u) for u in urls]
    assert sum(t.num_rows for t in rows) == len(photos)
    t = rows[0]
    meta = t.schema.metadata
    assert meta[b"colorize.schema_version"].decode() == SCHEMA_VERSION
    L, ab = decode_lab(t.column("L")[0].as_py(), t.column("ab")[0].as_py(), t.column("height")[0].as_py(), t.column("width")[0].as_py())
    assert L.shape == (256, 256) and ab.shape == (256, 256, 2) and 0 <= L.min() and L.max() <= 100
    splits = {s for r in rows for s in r.column("split").to_pylist()}
    assert splits <= {"train", "val"}
    fs.invalidate_cache()
    assert not fs.find(f"{s3.bucket}/shards/_staging/{first.run_id}")  # staging cleaned: no object left under it


def test_bad_inputs_are_quarantined_with_reasons(s3_run):
    s3, fs, *_ = s3_run
    paths = fs.glob(f"{s3.bucket}/shards/_quarantine/*.parquet")
    assert len(paths) == 1
    with fs.open(paths[0]) as f:
        q = pq.read_table(f).to_pylist()
    reasons = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in q}
    assert set(reasons) == set(bad_inputs())
    assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["truncated.jpg"] and "too large" in reasons["huge.png"]


def test_rerun_writes_nothing_new(s3_run):
    from flows.preprocess import preprocess_flow

    s3, fs, photos, first, _, shards, _ = s3_run
    before = sorted(fs.find(f"{s3.bucket}/shards"))
    again = preprocess_flow(f"s3://{s3.bucket}/photos", shards, rows_per_shard=3)
    assert again.written == 0 and again.shards == [] and again.quarantined == 0
    assert again.already_present == len(photos) + 1
    assert again.previously_quarantined == len(bad_inputs())
    assert again.not_read == again.seen  # each settled from its ETag in the listing
    assert sorted(fs.find(f"{s3.bucket}/shards")) == before


def test_a_rerun_reads_only_files_whose_listing_changed(tmp_path, prefect_harness):
    """Each file a run reads is recorded with its listing stamp. A rerun reads only what was touched
    (found present by its hash all the same), replaced (written) or whose content left the shards; a
    file whose size, time and inode are unchanged is not read: here its bytes were rewritten in place
    behind the stamp, and the rerun still counts it present, which it could not if it had read them."""
    import os

    from flows.preprocess import preprocess_flow

    src, shards = tmp_path / "src", tmp_path / "shards"
    src.mkdir()
    photos = list(real_photo_bytes().items())
    for name, data in photos[:3]:
        (src / name).write_bytes(data)
    first = preprocess_flow(str(src), str(shards), n_workers=1)
    assert (first.written, first.not_read) == (3, 0)

    names = [n for n, _ in photos[:3]]
    st = (src / names[0]).stat()
    with open(src / names[0], "r+b") as f:  # same size, same inode, then the old time put back
        f.write(b"\0" * st.st_size)
    os.utime(src / names[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(src / names[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same content
    (src / names[2]).write_bytes(photos[3][1])  # replaced: new content
    again = preprocess_flow(str(src), str(shards), n_workers=1)
    assert (again.written, again.already_present, again.not_read, again.quarantined) == (1, 2, 1, 0)

    third = preprocess_flow(str(src), str(shards), n_workers=1)  # every stamp now recorded
    assert (third.written, third.already_present, third.not_read) == (0, 3, 3)
    for url in committed_shards(str(shards)):  # the shards removed: their files are read again
        os.remove(url.removeprefix("file://"))
    fourth = preprocess_flow(str(src), str(shards), n_workers=1)
    assert (fourth.not_read, fourth.quarantined) == (0, 1) and fourth.written == 2  # the zeroed file is no image now


def test_bin_set_on_s3_has_prior_weights_and_pictures(s3_run):
    s3, fs, _, _, report, _, out = s3_run
    bins = BinSet.from_bytes(fs.cat_file(out.removeprefix("s3://")))
    assert bins.checksum == report["checksum"]
    assert np.isclose(bins.prior.sum(), 1) and np.isclose((bins.smoothed_prior * bins.weights).sum(), 1)
    assert 50 < report["canonical_seen"] <= 313 and report["extra_outside_canonical"] <= 3
    assert bins.params["pixels"] == report["pixels"] > 0
    assert all(u.startswith("s3://") for u in bins.params["shards"])
    for suffix in (".gamut.png", ".prior.png", ".json"):
        assert fs.exists(out.removeprefix("s3://").replace(".npz", suffix))


def test_dask_reduction_equals_single_process_histogram(s3_run):
    from tasks.bins import histogram_on_dask

    *_, shards, _ = s3_run
    urls = committed_shards(shards)
    single = ABHistogram()
    for u in urls:
        single = single + ABHistogram(shard_histogram(u))
    with dask_client(n_workers=2) as client:
        reduced = histogram_on_dask.fn(urls, client.scheduler.address)
    np.testing.assert_array_equal(reduced.counts, single.counts)
    assert reduced.total > 0


def test_staging_files_are_never_read_as_shards(tmp_path):
    shards = tmp_path / "shards"
    (shards / "_staging" / "run-x").mkdir(parents=True)
    (shards / "_staging" / "run-x" / "part-run-x-00000.parquet").write_bytes(b"PAR1 half written")
    (shards / "_tmp-123-part.parquet").write_bytes(b"half")
    assert committed_shards(str(shards)) == []


def test_kmeans_bins_from_local_shards(tmp_path, prefect_harness):
    from flows.bins import bins_flow
    from flows.preprocess import preprocess_flow

    src = tmp_path / "src"
    src.mkdir()
    for name, data in list(real_photo_bytes().items())[:4]:
        (src / name).write_bytes(data)
    preprocess_flow(str(src), str(tmp_path / "shards"), PreprocessConfig(val_fraction=0.0), n_workers=1)
    report = bins_flow(str(tmp_path / "shards"), str(tmp_path / "km.npz"), BinConfig(method="kmeans", k=32), n_workers=1)
    bins = BinSet.load(str(tmp_path / "km.npz"))
    assert bins.q == 32 and bins.kind == "kmeans" and report["bins"] == 32
    assert bins.weights.shape == (32,)
