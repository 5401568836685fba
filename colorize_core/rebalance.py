"""Bin prior and class-rebalancing weights (the paper's section 2.2).

`ABHistogram` counts ab values on the unit cells of the ab plane, independently of any bin set,
so partial histograms from many workers merge by addition and any bin set can be fitted afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .constants import AB_RANGE

if TYPE_CHECKING:  # bins imports this module: the bin set is only a type here
    from .bins import BinSet


@dataclass(frozen=True)
class RebalanceConfig:
    lam: float = 0.5  # weight of the uniform distribution in the mix
    sigma: float = 5.0  # Gaussian smoothing of the prior, ab units


class ABHistogram:
    """Counts over the (2R, 2R) unit cells of the ab plane; mergeable with `+`."""

    n = 2 * AB_RANGE

    def __init__(self, counts: np.ndarray | None = None):
        self.counts = np.zeros((self.n, self.n), np.int64) if counts is None else np.asarray(counts, np.int64)

    def add(self, ab: np.ndarray) -> "ABHistogram":
        """Adds (..., 2) ab values (values outside the plane are clipped onto its edge)."""
        cell = np.clip(np.floor(np.asarray(ab).reshape(-1, 2)).astype(np.int64) + AB_RANGE, 0, self.n - 1)
        flat = cell[:, 0] * self.n + cell[:, 1]
        self.counts += np.bincount(flat, minlength=self.n * self.n).reshape(self.n, self.n)
        return self

    def __add__(self, other: "ABHistogram") -> "ABHistogram":
        return ABHistogram(self.counts + other.counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def cell_centres(self) -> np.ndarray:
        ax = np.arange(-AB_RANGE, AB_RANGE, dtype=np.float32) + 0.5
        return np.stack(np.meshgrid(ax, ax, indexing="ij"), axis=-1).reshape(-1, 2)  # (C, 2)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """n ab values drawn from the histogram (cell centres), seeded: the K-Means input."""
        rng = np.random.default_rng(seed)
        p = self.counts.reshape(-1) / max(self.total, 1)
        return self.cell_centres()[rng.choice(p.size, size=n, p=p)]


def empirical_prior(hist: ABHistogram, centres: np.ndarray) -> np.ndarray:
    """(Q,) fraction of pixels whose nearest bin is each bin."""
    cells = torch.from_numpy(hist.cell_centres())
    nearest = torch.cdist(cells, torch.as_tensor(centres, dtype=torch.float32)).argmin(1).numpy()  # (C,)
    counts = np.bincount(nearest, weights=hist.counts.reshape(-1).astype(np.float64), minlength=len(centres))
    return counts / max(counts.sum(), 1.0)


def smooth_prior(prior: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Spreads each bin's mass with a Gaussian of width sigma over the bin centres; keeps the total."""
    c = np.asarray(centres, np.float64)
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # (Q, Q)
    k = np.exp(-d2 / (2 * sigma**2))
    k /= k.sum(0, keepdims=True)  # each source bin spreads exactly its own mass
    out = k @ np.asarray(prior, np.float64)
    return out / out.sum()


def rebalancing_weights(smoothed: np.ndarray, lam: float) -> np.ndarray:
    """w proportional to ((1 - lam) p + lam / Q)^-1, scaled so that sum(p * w) = 1."""
    p = np.asarray(smoothed, np.float64)
    w = 1.0 / ((1 - lam) * p + lam / p.size)
    return w / (p * w).sum()


def fit_prior(bins: BinSet, hist: ABHistogram, cfg: RebalanceConfig = RebalanceConfig()) -> BinSet:
    """The bin set with its empirical prior, smoothed prior and weights from `hist`."""
    prior = empirical_prior(hist, bins.centres)
    smoothed = smooth_prior(prior, bins.centres, cfg.sigma)
    params = dict(bins.params, lam=cfg.lam, sigma=cfg.sigma, pixels=hist.total)
    return bins.with_(prior=prior, smoothed_prior=smoothed, weights=rebalancing_weights(smoothed, cfg.lam), params=params)
