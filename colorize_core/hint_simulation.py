"""Hints simulated from the truth while training a model with hint input (Zhang et al. 2017): random
count, most images few, a share with none; each the mean ab of a small patch of the truth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HintSimulation:
    enabled: bool = False  # train with simulated hints (and a model with hint input)
    p_none: float = 0.25  # share of images with no hint: the automatic colours stay trained
    p_geometric: float = 0.125  # otherwise 1 + Geometric(p) hints: most images a few, some many
    max_hints: int = 32
    max_patch: int = 9  # each hint the mean ab of a square of 1..max_patch pixels of the truth, as in the paper


def simulate_hints(ab: torch.Tensor, cfg: HintSimulation, generator: torch.Generator) -> torch.Tensor:
    """ab (B, 2, H, W) of the truth -> hints (B, 3, H, W): patch means of it at random points, and their
    mask (channel 2). Drawn from `generator` alone, so a resumed run draws the same hints."""
    B, _, H, W = ab.shape
    hints = torch.zeros((B, 3, H, W), dtype=torch.float32)
    u = torch.rand(B, generator=generator)
    counts = 1 + torch.floor(torch.log(torch.rand(B, generator=generator).clamp_min(1e-12)) / math.log(1 - cfg.p_geometric)).long()
    counts = torch.where(u < cfg.p_none, 0, counts.clamp(max=cfg.max_hints))  # (B,)
    for b in range(B):
        for _ in range(int(counts[b])):
            s = int(torch.randint(1, cfg.max_patch + 1, (1,), generator=generator))
            y = int(torch.randint(0, H - s + 1, (1,), generator=generator))
            x = int(torch.randint(0, W - s + 1, (1,), generator=generator))
            hints[b, :2, y : y + s, x : x + s] = ab[b, :, y : y + s, x : x + s].float().mean(dim=(1, 2))[:, None, None]
            hints[b, 2, y : y + s, x : x + s] = 1.0
    return hints
