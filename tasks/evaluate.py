"""Evaluation and promotion tasks: metrics on held-out shards, recorded on the model version."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from colorize_core.data import read_rows
from colorize_core.evaluation import evaluate_package
from colorize_core.package import load_package
from tasks import logger
from tasks.preprocess import committed_shards
from tasks.registry import ModelRef
from tasks.train import open_url

PRIMARY = "model/annealed-mean"


@dataclass(frozen=True)
class PromotionPolicy:
    auc_tolerance: float = 0.01  # plain AuC may fall by this much
    psnr_tolerance: float = 0.5  # dB
    colourfulness_tolerance: float = 2.0  # |delta colourfulness| may grow by this much


@task(retries=2, retry_delay_seconds=3, cache_policy=NONE)
def evaluate_model(ref: ModelRef, shards: str, limit: int | None = None) -> dict[str, dict]:
    pkg = load_package(ref.directory)

    def images():
        n = 0
        for url in committed_shards(shards):
            for L, ab in read_rows(url, open_url, "val"):
                yield L, ab
                n += 1
                if limit and n >= limit:
                    return

    results = evaluate_package(pkg, images())
    if not results:
        raise ValueError(f"no validation rows in {shards}")
    return results


@task(retries=2, retry_delay_seconds=3, cache_policy=NONE)
def record_evaluation(ref: ModelRef, shards: str, results: dict[str, dict]) -> None:
    """Tags on the model version (eval.<metric>, eval.<baseline>.<metric>) and a Prefect table."""
    client = MlflowClient()
    for key, summary in results.items():
        prefix = "eval" if key == PRIMARY else f"eval.{key.replace('/', '.')}"
        for metric, value in summary.items():
            client.set_model_version_tag(ref.name, ref.version, f"{prefix}.{metric}", f"{value:.6g}")
    client.set_model_version_tag(ref.name, ref.version, "eval.shards", shards)
    rows = [{"what": k, **{m: round(v, 4) for m, v in s.items()}} for k, s in results.items()]
    create_table_artifact(key="evaluation", table=rows, description=f"{ref.name} v{ref.version} on {shards}")
    logger().info("evaluation of %s v%s: %s", ref.name, ref.version, results[PRIMARY])


def promotion_decision(candidate: dict[str, dict], champion: dict[str, dict] | None, policy: PromotionPolicy) -> tuple[bool, str]:
    """Whether the candidate takes the champion alias, and why (a pure function of the figures)."""
    cand = candidate[PRIMARY]
    if champion is None:
        gray = candidate["baseline/gray"]
        if cand["auc_rebalanced"] > gray["auc_rebalanced"]:
            return (
                True,
                f"no champion yet; rebalanced AuC {cand['auc_rebalanced']:.4f} beats the gray baseline's {gray['auc_rebalanced']:.4f}",
            )
        return (
            False,
            f"no champion yet, but rebalanced AuC {cand['auc_rebalanced']:.4f} does not beat the gray baseline's {gray['auc_rebalanced']:.4f}",
        )
    champ = champion[PRIMARY]
    if cand["auc_rebalanced"] < champ["auc_rebalanced"]:
        return False, f"rebalanced AuC {cand['auc_rebalanced']:.4f} below the champion's {champ['auc_rebalanced']:.4f}"
    if cand["auc"] < champ["auc"] - policy.auc_tolerance:
        return False, f"AuC {cand['auc']:.4f} more than {policy.auc_tolerance} below the champion's {champ['auc']:.4f}"
    if cand["psnr"] < champ["psnr"] - policy.psnr_tolerance:
        return False, f"PSNR {cand['psnr']:.2f} dB more than {policy.psnr_tolerance} dB below the champion's {champ['psnr']:.2f}"
    if abs(cand["delta_colourfulness"]) > abs(champ["delta_colourfulness"]) + policy.colourfulness_tolerance:
        return (
            False,
            f"|delta colourfulness| {abs(cand['delta_colourfulness']):.2f} worse than the champion's {abs(champ['delta_colourfulness']):.2f} beyond {policy.colourfulness_tolerance}",
        )
    return True, f"rebalanced AuC {cand['auc_rebalanced']:.4f} >= champion's {champ['auc_rebalanced']:.4f}, others within tolerance"


@task(retries=2, retry_delay_seconds=3, cache_policy=NONE)
def record_decision(name: str, candidate: str, champion: str | None, promoted: bool, reason: str, alias: str = "champion") -> None:
    client = MlflowClient()
    verdict = "promoted" if promoted else "refused"
    client.set_model_version_tag(name, candidate, "promotion.decision", verdict)
    client.set_model_version_tag(name, candidate, "promotion.reason", reason)
    if champion:
        client.set_model_version_tag(name, champion, f"promotion.challenged_by.v{candidate}", f"{verdict}: {reason}")
    if promoted:
        client.set_registered_model_alias(name, alias, candidate)
    logger().info("%s v%s %s against %s: %s", name, candidate, verdict, f"v{champion}" if champion else "no champion", reason)


def cached_evaluation(name: str, version: str, shards: str) -> dict[str, dict] | None:
    """Figures recorded on a model version for these shards, in `evaluate_model`'s shape, or None."""
    tags = MlflowClient().get_model_version(name, version).tags
    if tags.get("eval.shards") != shards:
        return None
    out: dict[str, dict] = {}
    for k, v in tags.items():
        if not k.startswith("eval.") or k == "eval.shards":
            continue
        parts = k.split(".")
        key, metric = (PRIMARY, parts[1]) if len(parts) == 2 else (f"{parts[1]}/{parts[2]}", parts[3])
        out.setdefault(key, {})[metric] = float(v)
    return out if PRIMARY in out and "baseline/gray" in out else None
