"""Evaluation and promotion tasks: metrics on held-out shards, recorded on the model version."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from mlflow import MlflowClient
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from colorize_core.data import read_rows
from colorize_core.decoder_fit import FitConfig, fit_decoder
from colorize_core.degrade import DegradeConfig
from colorize_core.evaluation import Sample, evaluate, predicted, samples, standard_configs
from colorize_core.package import load_package
from colorize_core.settings import ColorizeConfig
from tasks import logger
from tasks.model_list import PRIMARY  # the model package's own decode: what restore uses
from tasks.model_ref import ModelRef
from tasks.preprocess import committed_shards
from tasks.registry import register_package
from tasks.storage import open_url


@dataclass(frozen=True)
class PromotionPolicy:
    auc_tolerance: float = 0.01  # plain AuC may fall by this much
    psnr_tolerance: float = 0.5  # dB
    colourfulness_tolerance: float = 2.0  # |delta colourfulness| may grow by this much


def validation_samples(shards: str, limit: int | None = None, degraded: bool = False) -> list[Sample]:
    """The validation rows of the shards as evaluation samples; `degraded`: their L as an archival scan
    (the same seeded degradations every time)."""
    rows = itertools.islice((row for url in committed_shards(shards) for row in read_rows(url, open_url, "val")), limit)
    items = list(samples(rows, DegradeConfig(p=1.0) if degraded else None))
    if not items:
        raise ValueError(f"no validation rows in {shards}")
    return items


@task(retries=2, retry_delay_seconds=3, cache_policy=NONE)
def evaluate_model(ref: ModelRef, shards: str, limit: int | None = None, degraded: bool = False) -> dict[str, dict]:
    """Each decode of the model and the baselines; with `degraded`, the same again on the degraded copy
    (keys prefixed `degraded:`)."""
    pkg = load_package(ref.directory)
    configs = standard_configs(pkg)
    results = evaluate(pkg, predicted(pkg, validation_samples(shards, limit)), configs)
    if degraded:
        worn = evaluate(pkg, predicted(pkg, validation_samples(shards, limit, degraded=True)), configs)
        results |= {f"degraded:{k}": v for k, v in worn.items()}
    return results


@task(retries=2, retry_delay_seconds=3, cache_policy=NONE)
def record_evaluation(ref: ModelRef, shards: str, results: dict[str, dict]) -> None:
    """Tags on the model version: the primary figures one by one (eval.<metric>, for the registry's UI),
    the whole table as JSON (eval.results), the shards it was measured on; and a Prefect table."""
    client = MlflowClient()
    for metric, value in results[PRIMARY].items():
        client.set_model_version_tag(ref.name, ref.version, f"eval.{metric}", f"{value:.6g}")
    client.set_model_version_tag(ref.name, ref.version, "eval.results", json.dumps(results, separators=(",", ":")))
    client.set_model_version_tag(ref.name, ref.version, "eval.shards", shards)
    rows = [{"what": k, **{m: round(v, 4) for m, v in s.items()}} for k, s in results.items()]
    create_table_artifact(key="evaluation", table=rows, description=f"{ref.name} v{ref.version} on {shards}")
    logger().info("evaluation of %s v%s: %s", ref.name, ref.version, results[PRIMARY])


@task(retries=1, cache_policy=NONE)
def fit_and_register(ref: ModelRef, shards: str, limit: int | None = None, fit: FitConfig = FitConfig()) -> dict:
    """Fits the confident decode on the validation rows and registers the model with it as a new
    version (same weights and bins; the fitted decode in its config; the figures as tags)."""
    pkg = load_package(ref.directory)
    result = fit_decoder(pkg, validation_samples(shards, limit), ColorizeConfig(), fit)
    pkg.decode = result.decode
    pkg.meta = dict(pkg.meta, decoder_fit={"from_version": ref.version, "shards": shards, "feasible": result.feasible,
                                           "figures": result.figures, "gray": result.gray})  # fmt: skip
    version = register_package(pkg, ref.name, f"{ref.name} v{ref.version} with its decode fitted on {shards}",
                               tags={"decoder_fitted_from": ref.version, "decoder_fit_feasible": str(result.feasible)})  # fmt: skip
    logger().info("fitted decode %s (feasible: %s): %s", result.decode.settings(), result.feasible, result.figures)
    return {
        "decode": result.decode.settings(),
        "feasible": result.feasible,
        "model": f"models:/{ref.name}/{version}",
        "figures": result.figures,
    }


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
    if tags.get("eval.shards") != shards or "eval.results" not in tags:
        return None
    out = json.loads(tags["eval.results"])
    return out if PRIMARY in out and "baseline/gray" in out else None


def evaluation_table(results: dict[str, dict]) -> str:
    head = f"{'':30s} {'AuC':>7s} {'AuC rb':>7s} {'PSNR':>6s} {'colour':>7s} {'delta C':>8s} {'|dC|':>6s}"
    lines = [head]
    for k, v in results.items():
        lines.append(
            f"{k:30s} {v['auc']:7.4f} {v['auc_rebalanced']:7.4f} {v['psnr']:6.2f} {v['colourfulness']:7.1f} "
            f"{v['delta_colourfulness']:+8.1f} {v.get('abs_delta_colourfulness', float('nan')):6.1f}"
        )
    return "\n".join(lines)
