"""Dask clusters: a LocalCluster of worker processes by default, or an existing one by address
(the flow's `dask_address`, else `COLORIZE_DASK_ADDRESS`)."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from distributed import Client, LocalCluster


@contextlib.contextmanager
def dask_client(address: str | None = None, n_workers: int = 2, processes: bool = True) -> Iterator[Client]:
    logging.getLogger("distributed").setLevel(logging.WARNING)
    address = address or os.environ.get("COLORIZE_DASK_ADDRESS")
    if address:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
