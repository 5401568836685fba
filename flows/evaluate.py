"""Evaluate and promote flows: held-out metrics against baselines, and the champion gate."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import flow

from tasks.evaluate import PromotionPolicy, cached_evaluation, evaluate_model, promotion_decision, record_decision, record_evaluation
from tasks.registry import resolve
from tasks.tracking import configure_mlflow


@flow(name="evaluate", log_prints=True)
def evaluate_flow(model: str, shards: str, limit: int | None = None) -> dict:
    configure_mlflow()
    ref = resolve(model)
    results = evaluate_model(ref, shards, limit)
    if model.startswith("models:/"):
        record_evaluation(ref, shards, results)
    return results


@flow(name="promote", log_prints=True)
def promote_flow(
    model: str,
    candidate: str,
    shards: str | None = None,
    alias: str = "champion",
    auc_tolerance: float = PromotionPolicy.auc_tolerance,
    psnr_tolerance: float = PromotionPolicy.psnr_tolerance,
    colourfulness_tolerance: float = PromotionPolicy.colourfulness_tolerance,
    limit: int | None = None,
) -> dict:
    """Evaluates the candidate and the current champion on the same validation shards (by default
    the candidate's training shards) and moves the alias only when the candidate is good enough."""
    configure_mlflow()
    client = MlflowClient()
    shards = shards or client.get_run(client.get_model_version(model, candidate).run_id).data.params["shards"]
    try:
        champion = str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException:
        champion = None
    cand = _figures(model, candidate, shards, limit)
    champ = _figures(model, champion, shards, limit) if champion and champion != candidate else None
    promoted, reason = promotion_decision(cand, champ, PromotionPolicy(auc_tolerance, psnr_tolerance, colourfulness_tolerance))
    record_decision(model, candidate, champion if champion != candidate else None, promoted, reason, alias)
    return {
        "model": model,
        "candidate": candidate,
        "champion_before": champion,
        "promoted": promoted,
        "reason": reason,
        "candidate_metrics": cand["model/annealed-mean"],
        "champion_metrics": champ["model/annealed-mean"] if champ else None,
    }


def _figures(name: str, version: str, shards: str, limit: int | None) -> dict[str, dict]:
    """The version's figures on these shards: recorded ones when present, else evaluated now."""
    cached = cached_evaluation(name, version, shards) if limit is None else None
    if cached:
        return cached
    ref = resolve(f"models:/{name}/{version}")
    results = evaluate_model(ref, shards, limit)
    record_evaluation(ref, shards, results)
    return results
