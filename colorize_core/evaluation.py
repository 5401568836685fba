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


def prior_mean_ab(bins, temperature: float = 0.38) -> np.ndarray:
    """The baseline that paints every pixel the annealed mean of the training prior: (2,) ab."""
    from .decoding import annealed_mean

    prior = bins.smoothed_prior if bins.smoothed_prior is not None else bins.prior
    logits = torch.from_numpy(np.log(np.maximum(prior, 1e-12))).float()[None, :, None, None]  # (1, Q, 1, 1)
    return annealed_mean(logits, torch.from_numpy(bins.centres), temperature)[0, :, 0, 0].numpy()


@torch.no_grad()
def evaluate_package(pkg, images, decodes=("annealed-mean", "mean", "argmax"), batch: int = 8) -> dict[str, dict]:
    """Metrics of the model under each decode and of the two baselines, over (L, ab) validation
    images (L (H, W) float, ab (H, W, 2)), all computed in one pass."""
    from .decoding import DecodeConfig
    from .inference import decode_to_size

    evs = {f"model/{d}": Evaluator() for d in decodes} | {"baseline/gray": Evaluator(), "baseline/prior-mean": Evaluator()}
    prior_ab = prior_mean_ab(pkg.bins)
    buf: list = []

    def flush():
        L = torch.stack([torch.from_numpy(np.asarray(lum, np.float32)) for lum, _ in buf])[:, None]  # (B, 1, H, W)
        logits = pkg.model(L).float()
        for d in decodes:
            ab = decode_to_size(logits, pkg.model.centres, DecodeConfig(method=d, temperature=pkg.decode.temperature), tuple(L.shape[-2:]))
            for i, (lum, t) in enumerate(buf):
                evs[f"model/{d}"].add(lum, t, ab[i].permute(1, 2, 0).numpy())
        for lum, t in buf:
            evs["baseline/gray"].add(lum, t, np.zeros_like(t, np.float32))
            evs["baseline/prior-mean"].add(lum, t, np.broadcast_to(prior_ab, t.shape).astype(np.float32))
        buf.clear()

    for L, ab in images:
        buf.append((L, np.asarray(ab, np.float32)))
        if len(buf) == batch:
            flush()
    if buf:
        flush()
    return {k: ev.summary() for k, ev in evs.items() if ev.psnr}
