"""Pictures of a bin set: the quantised gamut (each bin in its own colour) and the prior, log scale."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from colorize_core.bins import BinSet  # noqa: E402
from colorize_core.color import lab_to_rgb  # noqa: E402
from colorize_core.constants import AB_RANGE  # noqa: E402
from colorize_core.rebalance import ABHistogram  # noqa: E402


def _voronoi(bins: BinSet, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """(2R, 2R) nearest-bin index of each unit cell of the ab plane, and a mask of cells within reach."""
    cells = ABHistogram().cell_centres()
    d = np.linalg.norm(cells[:, None, :] - bins.centres[None], axis=-1)  # (C, Q)
    n = 2 * AB_RANGE
    return d.argmin(1).reshape(n, n), (d.min(1) <= reach).reshape(n, n)


def gamut_png(bins: BinSet, lightness: float = 60.0) -> bytes:
    reach = float(bins.params.get("grid_size", 10)) * 0.75
    nearest, mask = _voronoi(bins, reach)
    lab = np.concatenate([np.full((bins.q, 1), lightness), bins.centres], axis=1)
    img = lab_to_rgb(lab)[nearest]  # (2R, 2R, 3)
    img[~mask] = 1.0
    return _plot(img.transpose(1, 0, 2), f"{bins.kind} bins (Q = {bins.q}) at L = {lightness:g}")


def prior_png(bins: BinSet) -> bytes:
    prior = bins.smoothed_prior if bins.smoothed_prior is not None else bins.prior
    reach = float(bins.params.get("grid_size", 10)) * 0.75
    nearest, mask = _voronoi(bins, reach)
    logp = np.log10(np.maximum(prior, 1e-12))[nearest]
    logp = np.where(mask, logp, np.nan)
    return _plot(logp.T, "log10 smoothed prior", cmap="viridis")


def _plot(img: np.ndarray, title: str, cmap: str | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    extent = (-AB_RANGE, AB_RANGE, -AB_RANGE, AB_RANGE)
    shown = ax.imshow(img, origin="lower", extent=extent, cmap=cmap)
    if cmap:
        fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_xlabel("a")
    ax.set_ylabel("b")
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
