"""Evaluate and promote flows: held-out metrics against baselines, the decoder fit, and the champion gate."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import flow

from tasks.checks import ArgumentError
from tasks.evaluate import (
    PRIMARY,
    PromotionPolicy,
    cached_evaluation,
    evaluate_model,
    fit_and_register,
    promotion_decision,
    record_decision,
    record_evaluation,
)
from tasks.registry import resolve
from tasks.tracking import configure_mlflow


@flow(name="evaluate", log_prints=True)
def evaluate_flow(model: str, shards: str, limit: int | None = None, degraded: bool = False, fit_decoder: bool = False) -> dict:
    """Figures of `model` on the validation rows of `shards` (and of their degraded copy). With
    `fit_decoder`, the confident decode is fitted on them first and the model registered again with it
    as its default (a new version): the figures are then those of the new version."""
    configure_mlflow()
    if fit_decoder and not model.startswith("models:/"):
        raise ArgumentError(f"--fit-decoder registers a new version: give a registry URI, not {model}")
    ref = resolve(model)
    fitted = None
    if fit_decoder:
        fitted = fit_and_register(ref, shards, limit)
        ref = resolve(fitted["model"])
    results = evaluate_model(ref, shards, limit, degraded)
    if ref.uri.startswith("models:/"):
        record_evaluation(ref, shards, results)
    return {"model": f"{ref.name} v{ref.version}", "results": results, "fitted": fitted}


@flow(name="promote", log_prints=True)
def promote_flow(
    model: str,
    candidate: str,
    shards: str | None = None,
    alias: str = "champion",
    policy: PromotionPolicy = PromotionPolicy(),
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
    promoted, reason = promotion_decision(cand, champ, policy)
    record_decision(model, candidate, champion if champion != candidate else None, promoted, reason, alias)
    return {
        "model": model,
        "candidate": candidate,
        "champion_before": champion,
        "promoted": promoted,
        "reason": reason,
        "candidate_metrics": cand[PRIMARY],
        "champion_metrics": champ[PRIMARY] if champ else None,
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
