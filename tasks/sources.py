"""Listing a collection: the files preprocess and restore start from, without either's heavy imports."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from tasks import logger as get_run_logger
from tasks.storage import list_stamped


@task(retries=3, retry_delay_seconds=2, cache_policy=NONE)
def list_sources(source: str) -> tuple[dict[str, str], list[str]]:
    """({image URL: its stamp}, other files) under `source`."""
    images, others = list_stamped(source)
    get_run_logger().info("found %d image files and %d other files under %s", len(images), len(others), source)
    return images, others
