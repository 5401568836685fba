"""From chroma at the network's resolution to chroma at the original's, strip by strip.

The network predicts ab at a quarter of its 256 x 256 input; archival scans are thousands of pixels
wide. Bilinear upsampling spreads colour across edges. The guided filter (He, Sun & Tang 2010; its
fast form, He & Sun 2015) fits, in each small window of the working-resolution image, ab = A L + B
with L the lightness; A and B vary slowly, so they are upsampled, and the full-resolution ab is
A L + B with the ORIGINAL full-resolution L: colour follows the edges of the archive's own detail.
Bilinear upsampling is the special case A = 0.

A `ChromaField` holds the coefficients at working resolution and produces any band of rows at full
resolution with two taps per axis, so a 100-megapixel scan never holds more than one strip of ab; the
per-pixel work is compiled (`kernels.field_rows`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from .kernels import box_mean, field_rows
from .settings import UpsampleConfig


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """(B, C, h, w) -> the mean over each (2r + 1)^2 window clipped to the image."""
    x = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
    out = np.empty_like(x)
    box_mean(x.reshape(-1, *x.shape[-2:]), r, out.reshape(-1, *x.shape[-2:]))
    return torch.from_numpy(out)


def guided_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """guide (B, 1, h, w), src (B, C, h, w) -> A, B (B, C, h, w), already box-averaged, such that
    src ~ A * guide + B locally."""
    mean_i = _box(guide, radius)  # (B, 1, h, w)
    mean_p = _box(src, radius)  # (B, C, h, w)
    cov_ip = _box(guide * src, radius) - mean_i * mean_p
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius), _box(b, radius)


def taps(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(i0, i1, w1): bilinear resampling from in_size to out_size as F.interpolate(align_corners=False)."""
    src = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    return i0, i1, (src - i0).clamp(0, 1).float()


class ChromaField:
    """ab at full resolution on demand: `rows(r0, r1, L)` -> (2, r1 - r0, W) for that band's L."""

    def __init__(self, L_small: torch.Tensor, ab_small: torch.Tensor, size: tuple[int, int], cfg: UpsampleConfig):
        """L_small (S, S) at working resolution, ab_small (2, h, w) at the network's output resolution."""
        ab = F.interpolate(ab_small[None].float(), size=L_small.shape[-2:], mode="bilinear", align_corners=False)  # (1, 2, S, S)
        if cfg.method == "guided":
            a, b = guided_coefficients(L_small[None, None].float(), ab, cfg.radius, cfg.eps)
            coeff = torch.cat([a[0], b[0]])  # (4, S, S): A_a, A_b, B_a, B_b
        else:
            coeff = ab[0]  # (2, S, S): B only
        self.coeff = coeff.contiguous().numpy()  # (C, S, S)
        self.guided = cfg.method == "guided"
        self._sample(size)

    def _sample(self, size: tuple[int, int]) -> None:
        S = self.coeff.shape[-1]
        self.y, self.x = [tuple(t.numpy() for t in taps(n, S)) for n in size]  # (first, second, weight) per row, per column

    def at(self, size: tuple[int, int]) -> "ChromaField":
        """The same field for the image shown at another size (a preview): new taps, same coefficients."""
        other = copy.copy(self)
        other._sample(size)
        return other

    def band(self, r0: int, r1: int) -> tuple:
        """What the compiled loop needs for rows r0..r1: the coefficients, the band's row taps, the column taps."""
        y0, y1, wy = self.y
        return (self.coeff, y0[r0:r1], y1[r0:r1], wy[r0:r1], *self.x, self.guided)

    def rows(self, r0: int, r1: int, L: torch.Tensor) -> torch.Tensor:
        """L (r1 - r0, W) of the full-resolution band -> ab (2, r1 - r0, W)."""
        L = np.ascontiguousarray(L.detach().numpy(), dtype=np.float32)
        out = np.empty((2, *L.shape), np.float32)
        field_rows(*self.band(r0, r1), L, out)
        return torch.from_numpy(out)
