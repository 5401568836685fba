"""Dask clusters: a LocalCluster of worker processes by default, or an existing one by address
(the flow's `dask_address`, else `COLORIZE_DASK_ADDRESS`)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from typing import Any, Callable, Iterable, Iterator

import dask
from distributed import Client, LocalCluster, as_completed

from tasks.ports import free_port
from tasks.state import environ_kept

# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also stops glibc from raising its
# mmap threshold: every large temporary of the full-resolution join is then mmap'ed and faulted in anew.
# Both thresholds at 256 MB keep them on the heap. And a worker runs its tasks on a thread, whose
# allocations go to a separate glibc arena that gives its memory back on every large free, thresholds
# or not: one arena keeps them on the main heap (figures: docs/benchmarks.md). Set for every worker the project starts (LocalCluster here, the
# local stack through DASK_ environment variables, the compose file likewise).
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": "268435456", "MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_ARENA_MAX": "1"}


# Dask's statistical profiler samples every worker thread's stack every 10 ms; on Python-heavy tasks
# (decoding and converting many small images) it costs more than it tells: off for the project's workers.
# Every scheduler, nanny and worker also wakes 50 times a second to time its own event loop (admin.tick)
# and each nanny 10 times a second to read its worker's memory: CPU taken from the work on a small
# machine; once a second is enough for both. (A tick that late only delays the "event loop unresponsive" warning; a worker over its memory
# limit is stopped within a second instead of a tenth.)
CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def worker_environ() -> dict:
    """The nanny's pre-spawn environment with the project's allocator settings."""
    return {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC}


def dask_env_vars() -> dict[str, str]:
    """The same settings as environment variables, for `dask scheduler` and `dask worker` processes
    started elsewhere."""
    env = {f"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__{k}": v for k, v in WORKER_MALLOC.items()}
    return env | {"DASK_" + k.upper().replace(".", "__").replace("-", "_"): str(v) for k, v in CLUSTER_CONFIG.items()}


def security(env: dict | None = None):
    """TLS client credentials for a `tls://` scheduler, from COLORIZE_DASK_TLS_CA / _CERT / _KEY."""
    from distributed.security import Security

    env = os.environ if env is None else env
    if not env.get("COLORIZE_DASK_TLS_CA"):
        return None
    return Security(tls_ca_file=env["COLORIZE_DASK_TLS_CA"], tls_client_cert=env["COLORIZE_DASK_TLS_CERT"],
                    tls_client_key=env["COLORIZE_DASK_TLS_KEY"], require_encryption=True)  # fmt: skip


def connect(address: str, env: dict | None = None, **kw) -> Client:
    """A client of an existing scheduler, with the TLS credentials the environment gives."""
    return Client(address, security=security(env), **kw)


@contextlib.contextmanager
def dask_client(address: str | None = None, n_workers: int = 2, processes: bool = True) -> Iterator[Client]:
    logging.getLogger("distributed").setLevel(logging.WARNING)
    address = address or os.environ.get("COLORIZE_DASK_ADDRESS")
    if address:
        try:
            with connect(address) as client:
                yield client
        finally:
            if address in _STARTED:  # the run's work is done: its workers stop while it writes its reports
                _STARTED[address].close_soon()
        return
    with local_cluster(n_workers, processes) as cluster, Client(cluster) as client:
        try:
            yield client
        finally:
            quiet_workers(client)


def quiet_workers(client: Client) -> None:
    """Before a local cluster whose work is done closes: a worker whose heartbeat meets the closing
    scheduler logs a traceback (a race in distributed's shutdown, harmless by then, seen once on a
    newcomer's second `make run`), so its workers stop logging first."""
    with contextlib.suppress(Exception):
        client.run(_silence_distributed)


def _silence_distributed() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def local_cluster(n_workers: int, processes: bool = True, scheduler_port: int = 0, preload: tuple[str, ...] = ()) -> LocalCluster:
    """The project's LocalCluster: one thread a worker, no dashboard, the workers' settings above.

    The nanny writes the workers' settings into this process's environment to spawn them, and leaves
    them there: torch first imported here afterwards would run one thread (OMP_NUM_THREADS=1), and so
    would every subprocess. They are put back once the workers are up. `preload`: modules each worker
    imports as it starts, before any task arrives.

    With `preload`, the workers are forked from one process that imported torch and those modules once
    (multiprocessing's forkserver, started with the workers' settings), not each spawned to import
    them anew: about 2 s less CPU while the command, the Prefect API and the workers all start on a
    small machine. Only for a process whose environment is set before its first cluster (the command
    line's): a worker inherits the environment the forkserver started with."""
    env = worker_environ()
    fork = {"distributed.worker.multiprocessing-method": "forkserver"} if preload and processes else {}
    with environ_kept(env), dask.config.set({"distributed.nanny.pre-spawn-environ": env, **CLUSTER_CONFIG, **fork}):
        if fork:
            from distributed.utils import get_mp_context

            get_mp_context().set_forkserver_preload(["distributed", "torch", *preload])  # used when the forkserver starts
        return LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=processes,
            scheduler_port=scheduler_port,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            **({"preload": list(preload)} if preload else {}),
        )


def map_as_completed(client: Client, fn: Callable, jobs: Iterable[tuple], window: int = 256) -> Iterator[tuple[int, Any]]:
    """(index, result) of `fn(*job)` for each job, as they finish, so results are handled (committed,
    recorded) as soon as each is ready. Jobs go to the scheduler in messages of many (one `map`),
    at most `window` at a time, topped up once half have finished: the scheduler queues them and hands
    each worker about one at a time (distributed's `worker-saturation`), and a collection of millions
    of photos never puts more than `window` jobs in its graph. (Submitting them one by one as others
    finished cost the client CPU that a small machine's workers need.) A job lost with its worker is rerun by Dask on another."""
    pending = enumerate(jobs)
    index: dict[str, int] = {}
    # on this client's loop, not the default client's: another client in the process has its own (dask/distributed#4357)
    queue = as_completed(loop=client.loop)

    def submit(n: int) -> None:
        batch = list(itertools.islice(pending, n))
        if batch:
            futures = client.map(fn, *zip(*(job for _, job in batch)), pure=False)
            index.update((f.key, i) for (i, _), f in zip(batch, futures))
            queue.update(futures)

    submit(window)
    for fut in queue:
        yield index.pop(fut.key), fut.result()
        if queue.count() < window // 2:
            submit(window - queue.count())


def cluster_for(source: str, dask_address: str | None, n_workers: int, preload: tuple[str, ...] = ()) -> ClusterInBackground | None:
    """A local cluster, started now, for a run over `source`: none when the run is given a cluster's
    address or the source is empty (nothing to distribute)."""
    from tasks.storage import any_file

    if dask_address or os.environ.get("COLORIZE_DASK_ADDRESS") or not any_file(source):
        return None
    return ClusterInBackground(n_workers, preload)


_STARTED: dict[str, "ClusterInBackground"] = {}  # address -> the cluster this process started for one run


class ClusterInBackground:
    """A LocalCluster of worker processes started on a thread, its workers importing `preload` as they
    start, while the caller goes on with other start-up work (its own imports, the registry, the
    Prefect API). Its address is known at once (a port chosen up front); a client connecting early
    waits for the scheduler. `warm(fn)` runs `fn` on every worker once they are up (the model loaded
    before the first batch), on a thread of its own. The run's `dask_client` starts closing it as it
    lets go (the workers stop while the run writes its manifest and pages); `close` waits for that."""

    def __init__(self, n_workers: int, preload: tuple[str, ...] = ()):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.cluster: LocalCluster | None = None
        self.error: BaseException | None = None
        self._threads = [threading.Thread(target=self._start, args=(n_workers, preload), daemon=True, name="cluster-start")]
        self._threads[0].start()
        self._closing: threading.Thread | None = None
        self._close_error: BaseException | None = None
        _STARTED[self.address] = self

    def _start(self, n_workers: int, preload: tuple[str, ...]) -> None:
        try:
            logging.getLogger("distributed").setLevel(logging.WARNING)
            self.cluster = local_cluster(n_workers, scheduler_port=int(self.address.rsplit(":", 1)[1]), preload=preload)
        except BaseException as e:  # reported by close(); the flow's own client fails with a clear timeout meanwhile
            self.error = e

    def warm(self, fn: Callable[[], object]) -> None:
        def run() -> None:
            self._threads[0].join()
            if self.cluster is not None:
                with contextlib.suppress(Exception), Client(self.cluster, set_as_default=False) as client:
                    client.run(fn)  # a worker that fails here fails its first batch with the reason

        self._threads.append(threading.Thread(target=run, daemon=True, name="cluster-warm"))
        self._threads[-1].start()

    def close_soon(self) -> None:
        if self._closing is None:
            self._closing = threading.Thread(target=self._close, daemon=True, name="cluster-close")
            self._closing.start()

    def close(self) -> None:
        self.close_soon()
        self._closing.join()
        _STARTED.pop(self.address, None)
        if self._close_error is not None:
            raise self._close_error

    def _close(self) -> None:
        try:
            for t in self._threads:
                t.join()
            if self.cluster is not None:
                with Client(self.cluster, set_as_default=False) as client:
                    quiet_workers(client)
                self.cluster.close()
        except BaseException as e:  # raised by close(), in the caller's thread
            self._close_error = e
