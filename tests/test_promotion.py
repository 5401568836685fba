"""Evaluation against baselines and the promotion gate, on the real registry (SQLite)."""

import json

import mlflow
import torch
from mlflow import MlflowClient

from colorize_core.models import Colorizer, ModelConfig
from colorize_core.package import ColorizerPackage, load_package
from tasks.evaluate import PRIMARY, PromotionPolicy, promotion_decision
from tasks.model_resolve import BUNDLED_MODEL_DIR
from tasks.registry import log_package
from tasks.tracking import configure_mlflow


def figures(auc_rb, auc=0.9, psnr=22.0, dc=-10.0, gray_rb=0.78):
    return {
        PRIMARY: {"auc_rebalanced": auc_rb, "auc": auc, "psnr": psnr, "delta_colourfulness": dc},
        "baseline/gray": {"auc_rebalanced": gray_rb},
    }


def test_gate_rules():
    p = PromotionPolicy()
    assert promotion_decision(figures(0.80), None, p)[0]
    assert not promotion_decision(figures(0.70), None, p)[0]
    assert promotion_decision(figures(0.82), figures(0.81), p)[0]
    ok, reason = promotion_decision(figures(0.80), figures(0.81), p)
    assert not ok and "below the champion" in reason
    assert not promotion_decision(figures(0.82, auc=0.85), figures(0.81, auc=0.9), p)[0]
    assert not promotion_decision(figures(0.82, psnr=20.0), figures(0.81), p)[0]
    assert not promotion_decision(figures(0.82, dc=-20.0), figures(0.81, dc=-10.0), p)[0]
    assert promotion_decision(figures(0.82, dc=-11.0), figures(0.81, dc=-10.0), p)[0]


def test_better_candidate_promoted_worse_refused(photo_shards, mlflow_tmp, prefect_harness):
    from flows.evaluate import evaluate_flow, promote_flow

    configure_mlflow()
    good = load_package(BUNDLED_MODEL_DIR)
    bad_model = Colorizer(ModelConfig("tiny"), torch.from_numpy(good.bins.centres)).eval()
    with torch.no_grad():  # a model that paints everything saturated green
        classifier = bad_model.model8[-1]
        classifier.weight.zero_()
        classifier.bias.fill_(-10.0)
        green = int(((torch.from_numpy(good.bins.centres) - torch.tensor([-80.0, 80.0])) ** 2).sum(1).argmin())
        classifier.bias[green] = 10.0
    bad = ColorizerPackage(bad_model, good.bins)
    with mlflow.start_run():
        log_package(good, "colorizer")
    with mlflow.start_run():
        log_package(bad, "colorizer")
    shards = str(photo_shards)

    results = evaluate_flow("models:/colorizer/1", shards)["results"]
    assert set(results) >= {PRIMARY, "model/mean", "model/argmax", "baseline/gray", "baseline/prior-mean"}
    assert results[PRIMARY]["images"] == 2

    first = promote_flow("colorizer", "1", shards=shards)
    assert first["promoted"] and first["champion_before"] is None
    second = promote_flow("colorizer", "2", shards=shards)
    assert not second["promoted"] and second["champion_before"] == "1"
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("colorizer", "champion").version) == "1"
    v1, v2 = client.get_model_version("colorizer", "1").tags, client.get_model_version("colorizer", "2").tags
    assert v1["promotion.decision"] == "promoted" and v2["promotion.decision"] == "refused"
    assert "refused" in v1["promotion.challenged_by.v2"]
    assert float(v1["eval.auc_rebalanced"]) > float(v2["eval.auc_rebalanced"])
    assert json.loads(v2["eval.results"])["baseline/gray"]["auc_rebalanced"] < float(v1["eval.auc_rebalanced"])
