"""Soft-encoding of ab values onto a bin set (the paper's Z = H^-1_gt(Y)).

Exact k-nearest bins without a per-pixel search over all Q bins: a table over the unit cells of
the ab plane lists, per cell, every bin that can be among the k nearest of any point in that cell
(bins within d_k(cell centre) + cell diagonal, by the triangle inequality). A pixel then compares
itself with at most M candidates (M is about 12 for the canonical bins) instead of Q = 313.

Integer ab (what the Lab shards store) takes a faster path still: every one of the 256 x 256
integer points is encoded once, exactly, into a lookup table, and a pixel is one table read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .bins import BinSet
from .constants import AB_RANGE


@dataclass(frozen=True)
class EncodingConfig:
    neighbours: int = 5  # bins each ab value is spread over
    sigma: float = 5.0  # Gaussian width in ab units


class SoftEncoder:
    def __init__(self, bins: BinSet, cfg: EncodingConfig = EncodingConfig()):
        self.cfg = cfg
        self.q = bins.q
        centres = torch.as_tensor(bins.centres, dtype=torch.float32)  # (Q, 2)
        # a sentinel bin far away pads the candidate lists to one length
        self.centres_ext = torch.cat([centres, torch.full((1, 2), 1e6)], dim=0)  # (Q + 1, 2)
        self.table = self._candidate_table(centres, cfg.neighbours)  # (2R, 2R, M) int64
        self._int_lut: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _candidate_table(centres: torch.Tensor, k: int) -> torch.Tensor:
        q = centres.shape[0]
        ax = torch.arange(-AB_RANGE, AB_RANGE, dtype=torch.float32) + 0.5
        cell = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), dim=-1).reshape(-1, 2)  # (C, 2)
        d = torch.cdist(cell, centres)  # (C, Q)
        dk = d.topk(k, dim=1, largest=False).values[:, -1:]  # (C, 1)
        mask = d <= dk + math.sqrt(2.0) + 1e-4  # (C, Q)
        m = int(mask.sum(1).max())
        # candidates first (ordered by bin index), then the sentinel
        key = torch.where(mask, torch.arange(q).expand_as(mask), torch.full_like(d, q, dtype=torch.long))
        cand = key.sort(dim=1).values[:, :m]  # (C, M)
        n = 2 * AB_RANGE
        return cand.reshape(n, n, m).contiguous()

    def _nearest(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 2) -> indices (N, k) int64 and squared distances (N, k), nearest first."""
        cell = (ab.floor().long() + AB_RANGE).clamp_(0, 2 * AB_RANGE - 1)  # (N, 2)
        cand = self.table[cell[:, 0], cell[:, 1]]  # (N, M)
        d2 = (ab[:, None, :] - self.centres_ext[cand]).square().sum(-1)  # (N, M)
        d2k, pos = d2.topk(self.cfg.neighbours, dim=1, largest=False)  # (N, k), sorted ascending
        return cand.gather(1, pos), d2k

    def _integer_lut(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._int_lut is None:
            ax = torch.arange(-AB_RANGE, AB_RANGE, dtype=torch.float32)
            pts = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), dim=-1).reshape(-1, 2)  # (2R * 2R, 2)
            self._int_lut = self._encode_float(pts, 1 << 16)
        return self._int_lut

    def encode(self, ab: torch.Tensor | np.ndarray, chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., 2) ab -> (..., k) bin indices and (..., k) Gaussian weights summing to 1.

        Integer dtypes take the lookup-table path; values are clipped to [-AB_RANGE, AB_RANGE).
        """
        ab = torch.as_tensor(ab)
        if not ab.dtype.is_floating_point:
            idx_lut, w_lut = self._integer_lut()
            cell = (ab.long() + AB_RANGE).clamp_(0, 2 * AB_RANGE - 1)
            flat = cell[..., 0] * (2 * AB_RANGE) + cell[..., 1]  # (...)
            return idx_lut[flat], w_lut[flat]
        idx, w = self._encode_float(ab.float().reshape(-1, 2), chunk)
        k = self.cfg.neighbours
        return idx.reshape(*ab.shape[:-1], k), w.reshape(*ab.shape[:-1], k)

    def _encode_float(self, flat: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx_parts, w_parts = [], []
        for s in range(0, flat.shape[0], chunk):
            idx, d2 = self._nearest(flat[s : s + chunk])
            w = torch.softmax(-d2 / (2 * self.cfg.sigma**2), dim=1)  # normalised Gaussian weights
            idx_parts.append(idx)
            w_parts.append(w)
        k = self.cfg.neighbours
        idx = torch.cat(idx_parts) if idx_parts else torch.empty(0, k, dtype=torch.long)
        w = torch.cat(w_parts) if w_parts else torch.empty(0, k)
        return idx, w

    def hard(self, ab: torch.Tensor | np.ndarray, chunk: int = 1 << 20) -> torch.Tensor:
        """(..., 2) ab -> (...,) index of the nearest bin."""
        ab = torch.as_tensor(ab)
        if not ab.dtype.is_floating_point:
            return self.encode(ab)[0][..., 0]
        ab = ab.float()
        flat = ab.reshape(-1, 2)
        parts = [self._nearest(flat[s : s + chunk])[0][:, 0] for s in range(0, flat.shape[0], chunk)]
        out = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
        return out.reshape(ab.shape[:-1])

    def dense(self, ab: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(..., 2) -> (..., Q) soft target; for tests and small inputs, the loss uses the sparse form."""
        idx, w = self.encode(ab)
        out = torch.zeros(*idx.shape[:-1], self.q)
        return out.scatter_(-1, idx, w)
