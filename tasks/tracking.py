"""MLflow at the edge: tracking URI from the environment, default a SQLite file in the state folder.
MLflow is imported when configured, not with this module (tasks.model_resolve reads the URI alone)."""

from __future__ import annotations

import os

from tasks.state import setup_lock, state_dir

EXPERIMENT = "colorization"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def configure_mlflow(experiment: str = EXPERIMENT) -> str:
    """Points MLflow at the tracking URI and makes sure the experiment exists; returns its id."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with setup_lock():  # a new SQLite store is migrated on first use: by one process at a time
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            # with the embedded SQLite default, artifacts go beside it (not ./mlruns of the caller)
            location = (state_dir() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
    # active for the runs that follow: left at MLflow's Default, a new state's first run (the bundled
    # model's registration by `colorize import-weights`) logged its files into ./mlruns of the user's folder
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
