"""The `colorize` command line (see cli/common.py for how it is laid out)."""

import atexit
import os
import sys
import threading

from cli import models, restore, review, stack  # noqa: F401  (each registers its verbs on the app)
from cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """The `colorize` command. Once the verb has ended and Python's own exit work is done (the other
    threads joined, the exit handlers run: the temporary API stopped, the forkserver ended, logs
    flushed), the process leaves without tearing down each module it imported one by one: after a
    restore (Prefect, pydantic, SQLAlchemy, Dask) that took 0.6-1 s of the user's wait and changed nothing."""
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # what the interpreter's exit calls first, then the exit handlers: Prefect drains
    atexit._run_exitfuncs()  # its logs in the former, the temporary API stops in the latter
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
