"""Prefect tasks: thin wrappers that add retries, logging and storage I/O around colorize_core."""

import logging


def logger():
    """Prefect's run logger inside a flow or task; a plain logger when a task's `.fn` runs alone."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("colorize")
