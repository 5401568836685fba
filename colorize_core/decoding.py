"""From a per-pixel distribution over Q bins to one ab value (the paper's H), side by side.

All take logits (B, Q, H, W) so that temperatures are applied stably: softmax(log z / T) equals
softmax(logits / T) up to a per-pixel constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DECODES = ("annealed-mean", "argmax", "top-k", "mean")


@dataclass(frozen=True)
class DecodeConfig:
    method: str = "annealed-mean"  # annealed-mean | argmax | top-k | mean
    temperature: float = 0.38  # the paper's T for the annealed mean
    top_k: int = 5  # bins kept by top-k

    def __post_init__(self):
        if self.method not in DECODES:
            raise ValueError(f"unknown decode {self.method!r}; choose one of {', '.join(DECODES)}")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")


def _expect(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    # (B, Q, H, W) x (Q, 2) -> (B, 2, H, W)
    return torch.einsum("bqhw,qc->bchw", probs, centres.to(probs.dtype))


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    return _expect(torch.softmax(logits.float() / temperature, dim=1), centres)


def mean(logits: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return annealed_mean(logits, centres, 1.0)


def argmax_centroid(logits: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    idx = logits.argmax(dim=1)  # (B, H, W)
    return centres.to(torch.float32)[idx].permute(0, 3, 1, 2)  # (B, 2, H, W)


def top_k_mean(logits: torch.Tensor, centres: torch.Tensor, k: int = 5, temperature: float = 0.38) -> torch.Tensor:
    """The k most probable bins, re-weighted by their temperature softmax."""
    vals, idx = logits.float().topk(min(k, logits.shape[1]), dim=1)  # (B, k, H, W)
    w = torch.softmax(vals / temperature, dim=1)  # (B, k, H, W)
    ab = centres.to(torch.float32)[idx]  # (B, k, H, W, 2)
    return (w.unsqueeze(-1) * ab).sum(1).permute(0, 3, 1, 2)  # (B, 2, H, W)


def decode(logits: torch.Tensor, centres: torch.Tensor, cfg: DecodeConfig = DecodeConfig()) -> torch.Tensor:
    if cfg.method == "annealed-mean":
        return annealed_mean(logits, centres, cfg.temperature)
    if cfg.method == "mean":
        return mean(logits, centres)
    if cfg.method == "argmax":
        return argmax_centroid(logits, centres)
    return top_k_mean(logits, centres, cfg.top_k, cfg.temperature)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """(B, Q, H, W) -> (B, H, W) entropy in nats of the predicted distribution: the model's doubt."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)
