"""Colorization metrics of the paper and of the colourfulness literature."""

from __future__ import annotations

import numpy as np

AUC_THRESHOLDS = np.arange(0, 151, dtype=np.float64)  # ab-distance thresholds 0..150


def auc(ab_pred: np.ndarray, ab_true: np.ndarray, pixel_weights: np.ndarray | None = None) -> float:
    """Area under the cumulative ab-error curve over thresholds 0..150, in [0, 1].

    ab arrays (..., 2); `pixel_weights` (...) gives the rebalanced variant (the inverse prior of each
    pixel's ground-truth bin), so that rare colours count as much as common ones.
    """
    err = np.sqrt(((np.asarray(ab_pred, np.float64) - ab_true) ** 2).sum(-1)).reshape(-1)  # (N,)
    w = np.ones_like(err) if pixel_weights is None else np.asarray(pixel_weights, np.float64).reshape(-1)
    order = np.argsort(err)
    cum = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()  # weighted CMF at sorted errors
    frac = cum[np.searchsorted(err[order], AUC_THRESHOLDS, side="right")]  # (T,) fraction within t
    return float(frac.mean())


def psnr(rgb_pred: np.ndarray, rgb_true: np.ndarray) -> float:
    """PSNR in dB of float RGB in [0, 1]."""
    mse = float(((np.asarray(rgb_pred, np.float64) - rgb_true) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) on RGB in [0, 255]: sigma_rgyb + 0.3 mu_rgyb (signed opponents)."""
    rgb = np.asarray(rgb, np.float64).reshape(-1, 3)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    sigma = np.sqrt(rg.var() + yb.var())
    mu = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(sigma + 0.3 * mu)


def delta_colourfulness(rgb_pred: np.ndarray, rgb_true: np.ndarray) -> float:
    """Colourfulness of the prediction minus that of the truth: 0 is ideal, negative is too dull."""
    return colourfulness(rgb_pred) - colourfulness(rgb_true)


class AucAccumulator:
    """Mergeable AuC over many images: weighted counts of pixels by ceil(error), thresholds 0..150."""

    def __init__(self):
        self.within = np.zeros(AUC_THRESHOLDS.size + 1)  # last bucket: errors above 150
        self.total = 0.0

    def add(self, ab_pred: np.ndarray, ab_true: np.ndarray, pixel_weights: np.ndarray | None = None) -> None:
        err = np.sqrt(((np.asarray(ab_pred, np.float64) - ab_true) ** 2).sum(-1)).reshape(-1)
        w = np.ones_like(err) if pixel_weights is None else np.asarray(pixel_weights, np.float64).reshape(-1)
        bucket = np.minimum(np.ceil(err - 1e-9), AUC_THRESHOLDS.size).astype(np.int64)  # err <= t <=> bucket <= t
        self.within += np.bincount(bucket, weights=w, minlength=self.within.size)
        self.total += float(w.sum())

    @property
    def value(self) -> float:
        return float((np.cumsum(self.within)[: AUC_THRESHOLDS.size] / max(self.total, 1e-12)).mean())
