"""What every verb of the `colorize` command line shares: the app and its one-line errors (the
options several verbs take are in options.py). The verbs live by what they are about: restore.py
(restore, image, run), models.py (preprocess, bins, train, import, evaluate, promote, pipeline),
review.py (compare, verify, review), stack.py (the local stacks). Each checks its arguments, calls
one flow (or none) and prints.

Heavy libraries (torch, MLflow, Prefect, Dask) are imported inside the verbs that use them, so
`colorize --help` answers at once. Wrong arguments and unreachable services end with one line that
names the thing and the reason (exit status 2, or 1 for a service), nothing created; `--debug` shows
the traceback instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer

from tasks.state import apply_embedded_defaults, prefect_database_missing, state_dir, without_flow_heartbeats

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
_debug = False
_runs_flows = False
_verb = None
OWN_API = ("restore", "run")  # verbs that start the temporary API as soon as their arguments are checked
DEFAULT_MODEL = "models:/colorizer@champion"
ITEMS_FAILED = 3  # exit status of a run that finished with failed items (2: usage error, 1: a service unreachable)


NO_FLOW = (None, "stack", "train-settings", "image", "verify", "review", "models")  # verbs that answer without Prefect


@app.callback()
def main(ctx: typer.Context, debug: bool = typer.Option(False, "--debug", help="show a traceback instead of a one-line error")) -> None:
    """Colorize archival black-and-white photographs at scale."""
    global _debug, _runs_flows, _verb
    _debug, _verb = debug, ctx.invoked_subcommand
    apply_embedded_defaults()
    if not debug:
        third_parties_to_log(state_dir() / "logs" / "colorize.log")
    _runs_flows = ctx.invoked_subcommand not in NO_FLOW


def _flow_settings() -> contextlib.AbstractContextManager:
    """For a verb that runs flows, once its arguments are read (Prefect is not imported before): the
    temporary API has nobody to read flow heartbeats, so they are off; its first start says why it waits.
    restore and run start that API themselves, before Prefect is imported (tasks.temporary_api)."""
    if not _runs_flows or os.environ.get("PREFECT_API_URL"):
        return contextlib.nullcontext()
    home = apply_embedded_defaults()
    if prefect_database_missing(home):
        typer.echo(f"Prefect: no server configured; preparing the temporary local API's database in {home} (first run only)", err=True)
    return contextlib.nullcontext() if _verb in OWN_API else without_flow_heartbeats()


THIRD_PARTY_LOGGERS = ("mlflow", "alembic", "py.warnings", "distributed", "numba")


def third_parties_to_log(log: Path) -> None:
    """MLflow's and Prefect's banners, progress lines and warnings go to `log` (and Prefect's flow and
    task logs to its API, as always), not to the terminal: it shows the command's own lines and
    warnings, errors and the failed items. `--debug` leaves every library's output as it comes."""
    log.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # MLflow's own stderr handler, with colour escapes
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING if name == "alembic" else logging.INFO)  # not each of ~70 migrations
        logger.propagate = False
    logging.captureWarnings(True)


def clear_errors(fn):
    """One line and an exit status for the errors a user can act on; a traceback only with --debug."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        from colorize_core.imageio import ImageReadError
        from tasks.checks import ArgumentError, ModelMismatch, ServiceUnavailable

        try:
            with _flow_settings():
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except (ArgumentError, LookupError, ModelMismatch, ServiceUnavailable, ImageReadError, ValueError, FileNotFoundError) as e:
            if _debug:
                raise
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1 if isinstance(e, ServiceUnavailable) else 2) from None

    return run


def show(result, as_json: bool, prose=None) -> None:
    """A verb's result: JSON with --json, else `prose(result)` (default: one `key: value` line each)."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(prose(result) if prose else "\n".join(f"{k}: {v}" for k, v in result.items()))


def given(**kw) -> dict:
    """The options the user gave (None means: the config's own default, defined once in its dataclass)."""
    return {k: v for k, v in kw.items() if v is not None}


def tracking_reachable() -> None:
    from tasks.checks import check_tracking_server

    check_tracking_server(os.environ.get("MLFLOW_TRACKING_URI", ""))


def one_of(value: Optional[str], names: tuple[str, ...], what: str) -> Optional[str]:
    """An option's value checked against its choices while the arguments are read: nothing loaded yet."""
    if value is not None and value not in names:
        usage_error(f"unknown {what} {value!r}; choose one of {', '.join(names)}")
    return value


def usage_error(message: str) -> None:
    """One line and exit status 2, as clear_errors ends a verb: for checks made while reading arguments."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
