"""From a per-pixel distribution over Q bins to one ab value (the paper's H), side by side.

All take logits (B, Q, H, W) so that temperatures are applied stably: softmax(log z / T) equals
softmax(logits / T) up to a per-pixel constant.

Beside the paper's three, `confident` is the project's default for restoration: it undoes part of
the class rebalancing (a network trained with weights w(q) predicts roughly p(q) w(q), so subtracting
rho log w moves it back towards the true posterior), anneals with T, and scales the chroma by the
distribution's confidence (1 - normalised entropy): colourful where the model is sure, muted where
it is not. Its parameters are fitted on validation data by the evaluate flow (`fit_decoder`).
"""

from __future__ import annotations

import math

import torch

from .settings import PAPER_TEMPERATURE, DecodeConfig

def _bins_last(logits: torch.Tensor) -> torch.Tensor:
    """(B, Q, H, W) -> (B, H, W, Q) float32, contiguous: softmax over a contiguous last dimension is
    much faster than over dim 1, and the network's channels-last output is already
    laid out so (no copy)."""
    return logits.float().permute(0, 2, 3, 1).contiguous()


def _ab(ab_last: torch.Tensor) -> torch.Tensor:
    return ab_last.permute(0, 3, 1, 2).contiguous()  # (B, H, W, 2) -> (B, 2, H, W)


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float = PAPER_TEMPERATURE) -> torch.Tensor:
    return _ab(torch.softmax(_bins_last(logits) / temperature, dim=-1) @ centres.float())


def mean(logits: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return annealed_mean(logits, centres, 1.0)


def argmax_centroid(logits: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return _ab(centres.float()[_bins_last(logits).argmax(dim=-1)])  # (B, H, W) bin -> (B, 2, H, W)


def top_k_mean(logits: torch.Tensor, centres: torch.Tensor, k: int = 5, temperature: float = PAPER_TEMPERATURE) -> torch.Tensor:
    """The k most probable bins, re-weighted by their temperature softmax."""
    vals, idx = _bins_last(logits).topk(min(k, logits.shape[1]), dim=-1)  # (B, H, W, k)
    w = torch.softmax(vals / temperature, dim=-1)
    return _ab((w.unsqueeze(-1) * centres.float()[idx]).sum(-2))  # (B, H, W, k, 2) -> (B, 2, H, W)


def confident(
    logits: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor | None, cfg: DecodeConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ab (B, 2, H, W), confidence (B, H, W)): the prior-corrected annealed mean, chroma scaled by confidence."""
    z = _bins_last(logits)  # (B, H, W, Q)
    if weights is not None and cfg.prior_correction:
        z = z - cfg.prior_correction * torch.log(weights.float())
    logp = torch.log_softmax(z / cfg.temperature, dim=-1)
    p = logp.exp()
    conf = 1 + (p * logp).sum(-1) / math.log(z.shape[-1])  # (B, H, W) 1 - H / log Q
    span = max(cfg.confidence_high - cfg.confidence_low, 1e-6)
    gain = ((conf - cfg.confidence_low) / span).clamp(0, 1) if cfg.confidence_high > 0 else torch.ones_like(conf)
    return _ab((p @ centres.float()) * gain.unsqueeze(-1)), conf


def decode(
    logits: torch.Tensor, centres: torch.Tensor, cfg: DecodeConfig = DecodeConfig(), weights: torch.Tensor | None = None
) -> torch.Tensor:
    """`weights` (Q,) are the bin set's rebalancing weights, used by `confident` only."""
    if cfg.method == "confident":
        return confident(logits, centres, weights, cfg)[0]
    if cfg.method == "annealed-mean":
        return annealed_mean(logits, centres, cfg.temperature)
    if cfg.method == "mean":
        return mean(logits, centres)
    if cfg.method == "argmax":
        return argmax_centroid(logits, centres)
    return top_k_mean(logits, centres, cfg.top_k, cfg.temperature)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """(B, Q, H, W) -> (B, H, W) entropy in nats of the predicted distribution: the model's doubt."""
    logp = torch.log_softmax(_bins_last(logits), dim=-1)
    return -(logp.exp() * logp).sum(-1)
