"""Faults a real run meets, on real servers: object storage down for a while, a Dask worker killed
mid-batch, two runs over the same collection at once. Each run ends with every input done once."""

import io
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.photos import real_photo_bytes
from tests.test_restore import make_package, wait_for

CLI = [sys.executable, "-m", "cli"]


def grey_collection(n: int) -> dict[str, bytes]:
    """n distinct grey photos (rotations and crops of the real ones), as PNG bytes."""
    out, names = {}, sorted(real_photo_bytes())
    for i in range(n):
        img = Image.open(io.BytesIO(real_photo_bytes()[names[i % len(names)]])).convert("L").rotate(90 * (i // len(names)), expand=True)
        buf = io.BytesIO()
        img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(buf, "PNG")
        out[f"item-{i:02d}.png"] = buf.getvalue()
    return out


def done_rows(rows: list[dict]) -> list[str]:
    return [r["content_hash"] for r in rows if r["status"] == "done"]


def local_manifest_rows(dest) -> list[dict]:
    return [r for p in (dest / "_manifests").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_package(tmp_path_factory.mktemp("pkg"), "1")


def _env(tmp_path, **extra):
    return dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), COLORIZE_HOME=str(tmp_path / "state"), **extra)


def test_object_storage_down_for_ten_seconds_mid_run(tmp_path, package):
    from stacks.services import start_seaweedfs
    from tasks.ports import free_port
    from tests.s3 import BUCKET, KEY, S3, SECRET

    port, data = free_port(), tmp_path / "weed"
    server = start_seaweedfs(data, KEY, SECRET, BUCKET, port=port)
    s3 = S3(server.url, BUCKET)
    fs = s3.fs()
    items = grey_collection(12)
    for name, blob in items.items():
        fs.pipe(f"{BUCKET}/scans/{name}", blob)
    log = tmp_path / "run.log"
    cmd = CLI + ["restore", f"s3://{BUCKET}/scans", f"s3://{BUCKET}/out", "--model", package, "--batch-size", "1", "--workers", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(tmp_path, **s3.env()), start_new_session=True)
    try:
        wait_for(lambda: len(fs.glob(f"{BUCKET}/out/testmodel-v1/*.png", refresh=True)) >= 2 or proc.poll() is not None, 600, log)
        assert proc.poll() is None, "the run finished before the outage: " + log.read_text()[-2000:]
        server.stop()  # the store goes away mid-run ...
        time.sleep(10)
        server = start_seaweedfs(data, KEY, SECRET, BUCKET, port=port)  # ... and comes back on the same port and data
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
        fs = s3.fs()
        outputs = fs.glob(f"{BUCKET}/out/testmodel-v1/*.png")
        assert sorted(p.rsplit("/", 1)[1] for p in outputs) == sorted(items)
        assert not [p for p in fs.find(f"{BUCKET}/out") if "/_tmp-" in p], "no partial object left"
        rows = [r for p in fs.glob(f"{BUCKET}/out/_manifests/*.parquet") for r in pq.read_table(fs.open(p, "rb")).to_pylist()]
        assert len(rows) == len(items) and sorted(done_rows(rows)) == sorted(set(done_rows(rows))) and len(done_rows(rows)) == len(items)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        server.stop()


def test_a_worker_killed_mid_batch_its_batch_runs_elsewhere(tmp_path, package, prefect_harness):
    from distributed import Client, LocalCluster

    from flows.restore import restore_flow

    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    for name, blob in grey_collection(10).items():
        (src / name).write_bytes(blob)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        killed = []

        def kill_a_busy_worker():
            deadline = time.time() + 600
            while time.time() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if any("restore_batch" in str(t) for t in tasks)]
                if busy and len(list((dest / "testmodel-v1").glob("*.png"))) >= 1:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        s = restore_flow(str(src), str(dest), model=package, batch_size=2, dask_address=cluster.scheduler_address, progress=False)
        killer.join(timeout=5)
    assert killed, "a worker was killed while it held a batch"
    assert s.failed == 0 and s.done == 10
    assert sorted(p.name for p in (dest / "testmodel-v1").iterdir()) == sorted(p.name for p in src.iterdir())
    done = done_rows(local_manifest_rows(dest))
    assert len(done) == 10 and len(set(done)) == 10


def test_a_run_removes_what_its_killed_workers_left_half_written(tmp_path):
    """A worker killed between writing a temporary and moving it leaves the temporary (the test above
    kills at a random moment); the run removes its own before letting go of the destination, and
    leaves another run's report folder alone."""
    from tasks.layout import DestLayout
    from tasks.restore_runs import remove_stale_temporaries

    layout = DestLayout(str(tmp_path / "dest"), "testmodel-v1")
    ours = [tmp_path / "dest" / "testmodel-v1" / "sub" / "_tmp-1-a.png", tmp_path / "dest" / "_reports" / "run-a" / "img" / "_tmp-2-x.jpg"]
    kept = [tmp_path / "dest" / "testmodel-v1" / "a.png", tmp_path / "dest" / "_reports" / "run-b" / "img" / "_tmp-3-y.jpg"]
    for p in ours + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert remove_stale_temporaries.fn(layout, "run-a") == 2
    assert [p.exists() for p in ours + kept] == [False, False, True, True]


def test_two_runs_over_the_same_collection_at_once(tmp_path, package):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    items = grey_collection(8)
    for name, blob in items.items():
        (src / name).write_bytes(blob)
    procs, logs = [], []
    for i in range(2):
        logs.append(tmp_path / f"run{i}.log")
        with open(logs[-1], "wb") as out:
            cmd = CLI + ["restore", str(src), str(dest), "--model", package, "--batch-size", "2", "--workers", "1"]
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(tmp_path / f"home{i}")))
    codes = [p.wait(timeout=900) for p in procs]
    said = "\n".join(f"--- run {i}:\n{log.read_text()[-2000:]}" for i, log in enumerate(logs))
    assert codes == [0, 0], said
    assert sorted(p.name for p in (dest / "testmodel-v1").iterdir()) == sorted(items), "one output per input, no temporaries"
    rows = local_manifest_rows(dest)
    done = done_rows(rows)
    assert len(done) == len(items) and len(set(done)) == len(items), said
    assert sum(r["status"] == "skipped" for r in rows) == len(items), "the second run found everything done"


def test_a_write_cut_between_its_two_steps_leaves_nothing_behind(tmp_path, monkeypatch):
    """The store going away after the temporary key is written (as in the outage above) and coming back
    a few calls later: the error goes up for the caller's retry, and no temporary object stays."""
    import fsspec.implementations.local as local

    from tasks.storage import atomic_write, retrying

    outage = {"calls_left": 3}  # the next three calls after the first write fail: move, then the cleanup's first tries

    def down(real):
        def call(self, *a, **kw):
            if outage["calls_left"] > 0:
                outage["calls_left"] -= 1
                raise ConnectionError("the store went away")
            return real(self, *a, **kw)

        return call

    for name in ("mv", "exists", "rm"):
        monkeypatch.setattr(local.LocalFileSystem, name, down(getattr(local.LocalFileSystem, name)))
    target = tmp_path / "out" / "a.png"
    retrying(lambda: atomic_write(str(target), b"pixels"), "a.png", first_delay=0.01)
    assert outage["calls_left"] == 0 and target.read_bytes() == b"pixels"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]


def test_an_object_store_write_is_one_request(s3, monkeypatch):
    """On S3 an object is visible only once its upload is whole, so an output is written in place: one
    PUT, not a temporary key, a copy and a delete (three requests, three times slower on SeaweedFS)."""
    import s3fs

    from tasks.storage import atomic_write, read_bytes

    calls, real = [], s3fs.S3FileSystem._call_s3

    async def spy(self, method, *a, **kw):
        calls.append(method)
        return await real(self, method, *a, **kw)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", spy)
    data = os.urandom(300_000)
    atomic_write(f"s3://{s3.bucket}/one-request/a.jpg", data)
    assert calls == ["put_object"]
    assert read_bytes(f"s3://{s3.bucket}/one-request/a.jpg") == data


def test_reads_from_an_object_store_overlap_a_few_at_a_time(s3, monkeypatch):
    """Files come back in order, a missing one as its error in its place, while up to `depth` GETs are
    in flight at once (the latency of one hides behind the others and the caller's work)."""
    import asyncio

    import s3fs

    from tasks.storage import read_ahead

    fs = s3.fs()
    urls = []
    for i in range(12):
        fs.pipe(f"{s3.bucket}/ahead/{i:02d}.jpg", bytes([i]) * 1000)
        urls.append(f"s3://{s3.bucket}/ahead/{i:02d}.jpg")
    urls.insert(5, f"s3://{s3.bucket}/ahead/missing.jpg")
    in_flight, most, real = [0], [0], s3fs.S3FileSystem._call_s3

    async def spy(self, method, *a, **kw):
        if method != "get_object":
            return await real(self, method, *a, **kw)
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        try:
            await asyncio.sleep(0.05)  # an object store farther away than loopback
            return await real(self, method, *a, **kw)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", spy)
    out = list(read_ahead(urls, depth=3))
    assert [u for u, _ in out] == urls
    assert isinstance(out[5][1], FileNotFoundError)
    assert [d for u, d in out if "missing" not in u] == [bytes([i]) * 1000 for i in range(12)]
    assert 1 < most[0] <= 3


def test_writes_behind_the_work_report_each_item_and_stay_bounded(tmp_path):
    """Restore writes an image's files while it joins the next: each item hears of its own writes only
    (a failed write fails that item, not its neighbours), and never more than `groups` items wait."""
    from tasks.storage import WriteBehind

    (tmp_path / "blocker").write_bytes(b"a file where a folder should be")
    heard: dict[str, BaseException | None] = {}
    with WriteBehind(threads=3, groups=1) as writer:
        for item in ("a", "b", "c"):
            folder = tmp_path / ("blocker" if item == "b" else "out")  # b's second write cannot land
            writes = [(str(tmp_path / "out" / f"{item}.jpg"), item.encode()), (str(folder / f"{item}.png"), b"x" * 1000)]
            writer.put(writes, lambda e, item=item: heard.__setitem__(item, e))
            assert len(writer.pending) <= 1  # the one before was waited for
        assert set(heard) == {"a", "b"}  # c is still in flight until the writer closes
    assert heard["a"] is None and heard["c"] is None and isinstance(heard["b"], OSError)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "a.png", "b.jpg", "c.jpg", "c.png"]


def test_jobs_reach_the_scheduler_a_window_at_a_time():
    """A collection of millions of photos is not put into the scheduler's graph at once: at most a
    window of jobs is held, topped up as they finish, and every job's result comes back once."""
    from distributed import Client, LocalCluster

    from tasks.cluster import map_as_completed

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        results, held = [], []
        for i, r in map_as_completed(client, pow, ((i, 2) for i in range(40)), window=6):
            results.append((i, r))
            held.append(len(client.futures))
    assert sorted(results) == [(i, i * i) for i in range(40)]
    assert max(held) <= 6 + 1  # the window, and the future just handed out (released on the next step)


def test_object_storage_starts_when_a_port_it_picked_is_taken_first(tmp_path, monkeypatch):
    """A port free when picked can be taken before SeaweedFS binds it (a full suite once hit this):
    start-up notices the bind error in the log and starts again on other internal ports."""
    import socket

    from stacks import services
    from tests.s3 import BUCKET, KEY, S3, SECRET

    while True:  # a port with a gRPC twin (under 65536): weed's port picking skips any other
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        if taken.getsockname()[1] + services.GRPC_OFFSET < 65536:
            break
        taken.close()
    taken.listen()
    picks = iter([taken.getsockname()[1]])  # the master's port, the first picked inside
    real = services.free_port
    monkeypatch.setattr(services, "free_port", lambda: next(picks, None) or real())
    server = services.start_seaweedfs(tmp_path / "weed", KEY, SECRET, BUCKET, port=real())
    try:
        S3(server.url, BUCKET).fs().pipe(f"{BUCKET}/x", b"ok")
        said = (tmp_path / "weed" / "logs" / "seaweedfs.log").read_bytes()
        assert any(m in said for m in services.PORT_TAKEN)  # the first start did fail
    finally:
        server.stop()
        taken.close()


def test_object_storage_ports_are_never_another_parts_grpc_port(tmp_path, monkeypatch):
    """weed serves gRPC on each part's port + 10000 and exits when a part is given a port that is
    another's + 10000 (CI drew such a pair once): the project never hands it one."""
    import socket

    from stacks import services
    from tests.s3 import BUCKET, KEY, S3, SECRET

    while True:  # a port whose twin exists (under 65536)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + 10000 < 65536:
            break
    picks = iter([first, first + 10000])  # the master's port, then what would be the volume server's
    real = services.free_port
    monkeypatch.setattr(services, "free_port", lambda: next(picks, None) or real())
    server = services.start_seaweedfs(tmp_path / "weed", KEY, SECRET, BUCKET, port=real())
    try:
        S3(server.url, BUCKET).fs().pipe(f"{BUCKET}/x", b"ok")
        assert b"reserved for gRPC" not in (tmp_path / "weed" / "logs" / "seaweedfs.log").read_bytes()
    finally:
        server.stop()
