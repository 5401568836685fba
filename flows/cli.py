"""The `colorize` command line: one entry point, a subcommand per flow."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Colorize archival black-and-white photographs at scale.")


@app.callback()
def main() -> None:
    """Colorize archival black-and-white photographs at scale."""


@app.command()
def run() -> None:
    """The main job on embedded defaults: restore the sample collection."""
    typer.echo("The main job (the restoration flow) is not built yet: the environment is set up, nothing was restored.")
