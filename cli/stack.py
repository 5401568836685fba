"""The local stacks: start, back up, stop, status."""

from __future__ import annotations

from typing import Optional

import typer

from cli.common import app

stack_app = typer.Typer(help="The local stack: Prefect server, MLflow server, SeaweedFS S3, Dask scheduler and 2 workers.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up_cmd(
    production: bool = typer.Option(
        False, help="the production stack: PostgreSQL, S3 artifacts, authentication on every service, Dask over TLS"
    ),
    prefect_port: int = typer.Option(4200, help="Prefect server's port"),
    mlflow_port: int = typer.Option(5000, help="MLflow server's port"),
    s3_port: int = typer.Option(8333, help="SeaweedFS S3 port"),
    dask_port: int = typer.Option(8786, help="Dask scheduler's port"),
    postgres_port: int = typer.Option(5432, help="--production only"),
    restore_from: Optional[str] = typer.Option(None, help="--production only: a folder of `colorize stack backup` to start from"),
) -> None:
    """Start every service on 127.0.0.1 and print the environment for the shell (eval "$(colorize stack up)")."""
    from stacks.local import StackPorts, exports, stack_dir, stack_up
    from tasks.state import state_dir

    if production:
        from pathlib import Path

        from stacks.production import Ports, production_up

        ports = Ports(prefect_port, mlflow_port, s3_port, dask_port, postgres_port)
        info = production_up(stack_dir(state_dir(), True), ports, Path(restore_from) if restore_from else None)
    else:
        info = stack_up(state_dir(), StackPorts(prefect_port, mlflow_port, s3_port, dask_port))
    for name, s in info["services"].items():
        typer.echo(f"# {name}: pid {s['pid']}, {s['url']}, log {s['log']}", err=True)
    typer.echo(exports(info["env"]))


@stack_app.command("backup")
def stack_backup_cmd(
    folder: str = typer.Argument(..., help="where the database dumps go"),
    postgres_port: int = typer.Option(5432, help="PostgreSQL's port"),
) -> None:
    """Dump the production stack's databases (Prefect deployments and runs; MLflow runs, registry,
    aliases, users); bring them back with `stack up --production --restore-from FOLDER`."""
    from pathlib import Path

    from stacks.local import stack_dir
    from stacks.production import Ports, backup
    from tasks.state import state_dir

    for path in backup(stack_dir(state_dir(), True), Ports(postgres=postgres_port), Path(folder)):
        typer.echo(path)


@stack_app.command("down")
def stack_down_cmd(production: bool = typer.Option(False, help="the production stack")) -> None:
    """Stop every service of the stack by PID."""
    from stacks.local import stack_down
    from tasks.state import state_dir

    stopped = stack_down(state_dir(), production)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no stack was running")


@stack_app.command("status")
def stack_status_cmd(production: bool = typer.Option(False, help="the production stack")) -> None:
    """Whether each service of the stack is running."""
    from stacks.local import stack_status
    from tasks.state import state_dir

    for name, alive in stack_status(state_dir(), production).items():
        typer.echo(f"{name}: {'running' if alive else 'stopped'}")
