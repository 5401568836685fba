"""Losses: the paper's class-rebalanced soft cross-entropy and an LSGAN / hinge adversarial loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rebalanced_cross_entropy(
    logits: torch.Tensor, idx: torch.Tensor, soft: torch.Tensor, pixel_weights: torch.Tensor | None
) -> torch.Tensor:
    """Soft-target cross-entropy, each pixel weighted by the rebalancing weight of its nearest bin.

    logits (B, Q, h, w); idx, soft (B, h, w, k) from SoftEncoder; pixel_weights (B, h, w) or None
    for the plain loss. The sparse form gathers k log-probabilities instead of building (B, Q, h, w)
    targets.
    """
    logp = F.log_softmax(logits.float(), dim=1).permute(0, 2, 3, 1)  # (B, h, w, Q)
    ce = -(soft * logp.gather(-1, idx)).sum(-1)  # (B, h, w)
    if pixel_weights is not None:
        ce = ce * pixel_weights
    return ce.mean()


def adversarial_loss(logits: torch.Tensor, real: bool, kind: str = "lsgan") -> torch.Tensor:
    """Loss pushing patch logits towards real (True) or fake (False)."""
    if kind == "lsgan":
        return ((logits - (1.0 if real else 0.0)) ** 2).mean()
    if kind == "hinge":
        return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}: lsgan or hinge")
