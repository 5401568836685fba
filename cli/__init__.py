"""The `colorize` command line (see cli/common.py for how it is laid out)."""

from cli import models, restore, review, stack  # noqa: F401  (each registers its verbs on the app)
from cli.common import app

__all__ = ["app"]
