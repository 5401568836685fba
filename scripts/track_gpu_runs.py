"""Records the runs of `scripts/train_on_gpu.py` in MLflow, once their OUT folder is back from the GPU machine.

That machine has no MLflow, so its runs are logged afterwards, as one MLflow run each in the
`colorization` experiment (the same URI as `colorize train`): the run's settings and planned steps
as parameters, every validation as metrics at its step, and the best weights as an artifact.

Usage: python scripts/track_gpu_runs.py OUT [OUT ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow

from tasks.tracking import configure_mlflow


def track(history: Path, experiment_id: str) -> str:
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    validations = [r for r in rows if "step" in r]
    summary = next((r["summary"] for r in rows if "summary" in r), None)
    name = history.name.removesuffix(".history.jsonl")
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"gpu-{name}") as run:
        mlflow.set_tags({"trained_on": (summary or {}).get("device", "gpu"), "script": "scripts/train_on_gpu.py"})
        if summary is not None:
            plan = {k: v for k, v in summary.items() if k not in ("run", "result")}
            mlflow.log_params({**summary["run"], **plan})
            mlflow.log_metrics({f"final_{k}": v for k, v in summary["result"].items() if isinstance(v, (int, float))})
        for r in validations:
            mlflow.log_metrics({k: v for k, v in r.items() if k != "step" and isinstance(v, (int, float))}, step=r["step"])
        weights = history.with_name(f"{name}.pt")
        if weights.exists():
            mlflow.log_artifact(str(weights), artifact_path="checkpoint")
        return run.info.run_id


def main(folders: list[str]) -> None:
    experiment_id = configure_mlflow()
    for folder in folders:
        for history in sorted(Path(folder).glob("*.history.jsonl")):
            print(f"{history}: MLflow run {track(history, experiment_id)}")


if __name__ == "__main__":
    main(sys.argv[1:])
