"""Fitting the `confident` decode's few parameters on validation data.

The paper's annealed mean (T = 0.38) paints confident colour everywhere; on photographs a model has
not seen that loses to plain gray on PSNR. The fit looks for the decode that is as right about rare
colours as it can be (rebalanced AuC, the paper's headline measure) while staying as faithful as gray
(PSNR within a margin, plain AuC not below gray's) and right in colourfulness on each image, not just
on average. One forward pass over the validation images; every candidate is a decode of the same
logits, so the search costs decodes and metrics, not network passes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .evaluation import Sample, evaluate, predicted
from .settings import PAPER_TEMPERATURE, ColorizeConfig, DecodeConfig


@dataclass(frozen=True)
class FitConfig:
    psnr_margin: float = 0.3  # dB the decode may stay below gray's PSNR
    auc_margin: float = 0.0  # plain AuC at least gray's plus this
    max_abs_delta_colourfulness: float = 15.0  # mean per-image |delta colourfulness|
    temperatures: tuple[float, ...] = (0.25, 0.3, PAPER_TEMPERATURE, 0.5, 0.65, 0.8, 1.0, 1.25)  # below the paper's for less confident models
    prior_corrections: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    confidence_lows: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    confidence_widths: tuple[float, ...] = (0.1, 0.2, 0.4)  # high - low; no scaling is tried as well


@dataclass
class FitResult:
    decode: DecodeConfig
    figures: dict  # the chosen decode's metrics
    gray: dict  # the gray baseline's, on the same images
    feasible: bool  # every constraint met
    tried: list[tuple[dict, dict]]  # (decode settings, metrics) of every candidate


def violation(m: dict, gray: dict, cfg: FitConfig) -> float:
    """How far a candidate is from the constraints (0 when it meets all), in comparable units."""
    return (
        max(0.0, gray["psnr"] - cfg.psnr_margin - m["psnr"])  # dB
        + 100 * max(0.0, gray["auc"] + cfg.auc_margin - m["auc"])  # AuC points
        + 0.1 * max(0.0, m["abs_delta_colourfulness"] - cfg.max_abs_delta_colourfulness)
    )


def fit_decoder(pkg, items: list[Sample], colorize: ColorizeConfig = ColorizeConfig(), cfg: FitConfig = FitConfig()) -> FitResult:
    """Coordinate search: (T, rho) on a grid, then the confidence ramp, then (T, rho) again."""
    cached = list(predicted(pkg, items))
    gray = evaluate(pkg, cached, {}, baselines=True)["baseline/gray"]
    tried: dict[DecodeConfig, dict] = {}

    def score(d: DecodeConfig) -> tuple[float, float]:
        if d not in tried:
            tried[d] = evaluate(pkg, cached, {"x": dataclasses.replace(colorize, decode=d)}, baselines=False)["model/x"]
        m = tried[d]
        return (-violation(m, gray, cfg), m["auc_rebalanced"])  # feasibility first, then rebalanced AuC

    best = DecodeConfig("confident", temperature=cfg.temperatures[0])
    for _ in range(2):
        grid = [dataclasses.replace(best, temperature=t, prior_correction=r) for t in cfg.temperatures for r in cfg.prior_corrections]
        best = max(grid, key=score)
        ramps = [dataclasses.replace(best, confidence_low=0.0, confidence_high=0.0)] + [
            dataclasses.replace(best, confidence_low=lo, confidence_high=lo + w)
            for lo in cfg.confidence_lows
            for w in cfg.confidence_widths
        ]
        best = max(ramps, key=score)
    return FitResult(
        decode=best,
        figures=tried[best],
        gray=gray,
        feasible=violation(tried[best], gray, cfg) == 0,
        tried=[(d.settings(), m) for d, m in tried.items()],
    )
