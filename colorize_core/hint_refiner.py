"""A small network that corrects the hints' spread along L's edges (hint_propagation) by what it learnt
from the training photos with simulated hints: how far a colour carries beyond the edges that stop the
spread, and what a few hints say about the whole photograph's colours (a cast, a season, a dye), which
the spread cannot know and Zhang et al. 2017's hint network learns from ImageNet. A network with hint
input trained here on ~500 photos learnt to ignore its hints; this one sees the spread result, so it
only has to learn the correction.

It works at a quarter of the working size and its correction is added to the spread result, upsampled.
With no hint it is not run: the automatic colours are the model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .hint_propagation import propagate_hints, spread

SCALE = 4  # the refiner's grid: a quarter of the working size, the classifier's own
AB_SCALE = 110.0
CHANNELS = 12  # L, prior ab, spread ab, reach, hint cover, hint ab, hints' mean difference from the prior, hint count


class HintRefiner(nn.Module):
    """Residual dilated convolutions (receptive field ~60 cells, the whole 64-cell grid) with one global
    mean in the middle, ending in a zero-initialised layer: untrained, it leaves the spread as it is."""

    def __init__(self, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 1)):
        super().__init__()
        self.inp = nn.Conv2d(CHANNELS, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations)
        self.glob = nn.Linear(width, width)
        self.out = nn.Conv2d(width, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, CHANNELS, h, w) -> (B, 2, h, w) ab correction."""
        y = F.relu(self.inp(x))
        for i, block in enumerate(self.blocks):
            y = y + F.relu(block(y))
            if i == 1:
                y = y + self.glob(y.mean((2, 3)))[:, :, None, None]  # the photo as a whole
        return self.out(y) * AB_SCALE


def refiner_input(L, prior, colour, reach, hint_ab, mask, count) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (B, CHANNELS, S/4, S/4), spread result (B, 2, S, S)) from L (B, 1, S, S), the network's colours
    `prior` (B, 2, S, S), the spread's `colour` (B, 2, S, S) and `reach` (B, 1, S, S), the hints' ab
    (B, 2, S, S) where `mask` (B, 1, S, S), and `count` (B,) hints per image."""
    pool = lambda t: F.avg_pool2d(t, SCALE)  # noqa: E731
    m = mask.float()
    base = colour + (1 - reach) * prior  # (B, 2, S, S)
    mean_diff = ((hint_ab - prior) * m).sum((2, 3)) / m.sum((2, 3)).clamp(min=1)  # (B, 2)
    h, w = L.shape[2] // SCALE, L.shape[3] // SCALE
    overall = torch.cat([mean_diff / AB_SCALE, torch.log1p(count.float())[:, None] / 3], 1)[:, :, None, None].expand(-1, 3, h, w)
    parts = [pool(L) / 100 - 0.5, pool(prior) / AB_SCALE, pool(base) / AB_SCALE, pool(reach), pool(m), pool(hint_ab * m) / AB_SCALE, overall]
    return torch.cat(parts, 1), base


def honour_hints(L: np.ndarray, prior: np.ndarray, hint_ab: np.ndarray, mask: np.ndarray, count: int, refiner: HintRefiner | None = None) -> np.ndarray:
    """ab (2, S, S) float32 with the hints honoured: spread along L's (S, S) edges over the network's colours
    `prior` (2, S, S), corrected by `refiner` where the model has one. No hint: the prior."""
    if refiner is None or not mask.any():
        return propagate_hints(L, prior, hint_ab, mask)
    colour, reach = spread(L, hint_ab, mask)
    device = next(refiner.parameters()).device
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None].to(device)  # noqa: E731
    with torch.no_grad():
        x, base = refiner_input(t(L)[None], t(prior), t(colour), t(reach)[None], t(hint_ab), t(mask)[None], torch.tensor([count], device=device))
        correction = F.interpolate(refiner(x), size=L.shape, mode="bilinear", align_corners=False)
    return (base + correction)[0].cpu().numpy()


@dataclass(frozen=True)
class RefinerTrainConfig:
    steps: int = 3000
    batch: int = 16
    lr: float = 2e-3  # Adam, cosine to 0
    seed: int = 0


def train_refiner(
    net: HintRefiner, x: torch.Tensor, base: torch.Tensor, truth: torch.Tensor, cfg: RefinerTrainConfig,
    opt: torch.optim.Optimizer, start: int = 0,
) -> Iterator[tuple[int, float]]:
    """Steps start..cfg.steps on a pool of examples, yielding (step done, loss) after each: x (N, CHANNELS,
    h, w), the spread result `base` and the true ab `truth` (N, 2, h, w) on the refiner's grid. Each
    step's batch and flip come from a generator seeded by the step, so a run resumed from a checkpoint
    of (net, opt, step) goes on exactly as if it had not stopped."""
    g = torch.Generator()
    for step in range(start, cfg.steps):
        g.manual_seed(cfg.seed * 1_000_003 + step)
        i = torch.randint(0, len(x), (cfg.batch,), generator=g)
        xb, bb, tb = x[i], base[i], truth[i]
        if torch.rand((), generator=g) < 0.5:
            xb, bb, tb = xb.flip(3), bb.flip(3), tb.flip(3)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        loss = F.mse_loss(bb + net(xb), tb)  # mean squared ab error: what PSNR scores
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield step + 1, loss.item()
