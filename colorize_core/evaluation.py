"""Evaluation protocol shared by training validation and the evaluate flow.

Rebalanced AuC always weights pixels by the inverse ImageNet prior of their canonical bin (the
paper's protocol), so figures are comparable across models with different bin sets.
"""

from __future__ import annotations

import numpy as np
import torch

from .bins import canonical_bins
from .color import lab_to_rgb
from .encoding import SoftEncoder
from .metrics import AucAccumulator, colourfulness, psnr


class Evaluator:
    def __init__(self):
        canon = canonical_bins()
        self._encoder = SoftEncoder(canon)
        self._inv_prior = 1.0 / canon.prior
        self.auc, self.auc_rebalanced = AucAccumulator(), AucAccumulator()
        self.psnr, self.colourfulness, self.colourfulness_true = [], [], []

    def add(self, L: np.ndarray, ab_true: np.ndarray, ab_pred: np.ndarray) -> None:
        """One image: L (H, W), ab_true and ab_pred (H, W, 2)."""
        ab_true = np.asarray(ab_true, np.float32)
        ab_pred = np.asarray(ab_pred, np.float32)
        hard = self._encoder.hard(torch.from_numpy(np.round(ab_true).astype(np.int8))).numpy()
        self.auc.add(ab_pred, ab_true)
        self.auc_rebalanced.add(ab_pred, ab_true, self._inv_prior[hard])
        rgb_true = lab_to_rgb(np.concatenate([L[..., None], ab_true], -1))
        rgb_pred = lab_to_rgb(np.concatenate([L[..., None], ab_pred], -1))
        self.psnr.append(psnr(rgb_pred, rgb_true))
        self.colourfulness.append(colourfulness(rgb_pred * 255))
        self.colourfulness_true.append(colourfulness(rgb_true * 255))

    def summary(self) -> dict[str, float]:
        c, ct = np.mean(self.colourfulness), np.mean(self.colourfulness_true)
        return {
            "auc": self.auc.value,
            "auc_rebalanced": self.auc_rebalanced.value,
            "psnr": float(np.mean(self.psnr)),
            "colourfulness": float(c),
            "colourfulness_true": float(ct),
            "delta_colourfulness": float(c - ct),
            "images": len(self.psnr),
        }
