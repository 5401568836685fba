"""The registered model versions as a user asks for them (`colorize models`): name, version, aliases,
figures, when and from what. No flow and no Prefect: a registry read."""

from __future__ import annotations

import datetime as dt
import json

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tasks.tracking import configure_mlflow

PRIMARY = "model/default"  # the evaluation of the package's own decode (what restore uses; tasks.evaluate records it)
FIGURES = ("auc", "auc_rebalanced", "psnr")


def _figures(client: MlflowClient, mv) -> dict:
    """The version's recorded evaluation (its own decode), else its training run's last validation figures."""
    if "eval.results" in mv.tags:
        own = json.loads(mv.tags["eval.results"]).get(PRIMARY, {})
        return {k: round(float(own[k]), 4) for k in FIGURES if k in own}
    try:
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    except MlflowException:
        return {}
    return {k: round(float(metrics[f"val_{k}"]), 4) for k in FIGURES if f"val_{k}" in metrics}


def list_versions(name: str | None = None) -> list[dict]:
    """Every version of `name` (of every registered model when None), newest first."""
    configure_mlflow()
    client = MlflowClient()
    found = client.search_model_versions(f"name='{name}'" if name else None)
    aliases: dict[tuple[str, str], list[str]] = {}  # searches leave versions' aliases empty; the model has them
    for model in {mv.name for mv in found}:
        for alias, version in client.get_registered_model(model).aliases.items():
            aliases.setdefault((model, str(version)), []).append(alias)
    rows = []
    for mv in sorted(found, key=lambda v: (v.name, -int(v.version))):
        source = mv.tags.get("source")
        if source is None and mv.run_id:
            try:
                source = client.get_run(mv.run_id).data.tags.get("source")
            except MlflowException:
                source = None
        rows.append(
            {
                "uri": f"models:/{mv.name}/{mv.version}",
                "name": mv.name,
                "version": int(mv.version),
                "aliases": sorted(aliases.get((mv.name, str(mv.version)), [])),
                "metrics": _figures(client, mv),
                "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC).isoformat(timespec="seconds"),
                "source": source or ("training run " + mv.run_id if mv.run_id else mv.source),
                "promotion": mv.tags.get("promotion.decision"),
            }
        )
    return rows


def versions_table(rows: list[dict]) -> str:
    if not rows:
        return "no model is registered yet (the first `colorize run` registers the bundled one)"
    lines = [f"{'model':22s} {'aliases':14s} {'AuC rb':>7s} {'PSNR':>6s} {'created':20s} source"]
    for r in rows:
        m = r["metrics"]
        auc, psnr = m.get("auc_rebalanced"), m.get("psnr")
        lines.append(
            f"{r['uri']:22s} {','.join(r['aliases']) or '-':14s} {f'{auc:.4f}' if auc is not None else '-':>7s} "
            f"{f'{psnr:.2f}' if psnr is not None else '-':>6s} {r['created']:20s} {r['source']}"
        )
    return "\n".join(lines)
