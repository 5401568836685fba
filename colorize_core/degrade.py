"""What archival scans do to a photograph's lightness, applied to L only, for training and evaluation.

A scan of an old print is not a clean L channel: it is faded, grainy, blurred, unevenly exposed,
JPEG-compressed, dusty and scratched, sometimes printed through a halftone screen on toned paper.
Training on L degraded this way (the ab target untouched) teaches the network that a degraded scan
of a scene has the colours of the clean one; evaluating on a degraded copy measures it.

Every function takes L (H, W) float in [0, 100] and a `random.Random`, so a training stream that
resumes at an exact position replays the same degradations.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class DegradeConfig:
    p: float = 0.0  # chance that an image is degraded at all (0: training on clean L, as before)
    p_each: float = 0.35  # chance of each degradation once an image is chosen (at least one is applied)
    fade: tuple[float, float] = (0.45, 0.95)  # contrast kept by fading
    paper: tuple[float, float] = (78.0, 100.0)  # L of the paper: toned or yellowed prints never reach white
    exposure: float = 0.25  # amplitude of the smooth uneven-exposure field (fraction of L)
    blur: tuple[float, float] = (0.5, 2.0)  # Gaussian sigma in pixels
    grain: tuple[float, float] = (1.0, 7.0)  # noise sigma in L units
    jpeg: tuple[int, int] = (15, 60)  # JPEG quality of an earlier digitisation
    dust: tuple[int, int] = (3, 40)  # specks per 256 x 256
    scratches: tuple[int, int] = (0, 4)  # long thin lines
    halftone: tuple[float, float] = (3.0, 6.0)  # screen period in pixels


KINDS = ("fade", "exposure", "blur", "grain", "halftone", "dust", "jpeg")  # applied in this order, as a print ages then is scanned


def _gaussian_blur(L: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(L[None, None], (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1))[0, 0]


def fade(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    """Lower contrast towards a toned paper white and lifted blacks."""
    white = rng.uniform(*cfg.paper)
    black = rng.uniform(0.0, 20.0)
    c = rng.uniform(*cfg.fade)
    mid = L.mean()
    y = (mid + (L - mid) * c).clamp(0, 100)
    return black + y * (white - black) / 100.0


def exposure(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    """A smooth multiplicative field: a vignette or a gradient across the print."""
    H, W = L.shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    if rng.random() < 0.5:
        field = 1 - cfg.exposure * rng.uniform(0.3, 1.0) * (xx**2 + yy**2) / 2
    else:
        angle = rng.uniform(0, 2 * math.pi)
        field = 1 + cfg.exposure * rng.uniform(0.3, 1.0) * (math.cos(angle) * xx + math.sin(angle) * yy) / 2
    return (L * field).clamp(0, 100)


def blur(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    return _gaussian_blur(L, rng.uniform(*cfg.blur))


def grain(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    """Film grain: noise with a grain size of one or two pixels, stronger in the mid-tones."""
    g = torch.Generator().manual_seed(rng.getrandbits(63))
    noise = torch.randn(L.shape, generator=g)
    if rng.random() < 0.5:
        noise = _gaussian_blur(noise, 0.7) * 1.8
    weight = 0.5 + 2.0 * (L / 100.0) * (1 - L / 100.0)  # (H, W) 0.5 at the ends, 1 in the middle
    return (L + rng.uniform(*cfg.grain) * weight * noise).clamp(0, 100)


def halftone(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    """A printed screen at an angle, seen through a scanner's slight blur."""
    H, W = L.shape
    period, angle = rng.uniform(*cfg.halftone), rng.uniform(0, math.pi / 2)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    u = (math.cos(angle) * xx + math.sin(angle) * yy) * 2 * math.pi / period
    v = (-math.sin(angle) * xx + math.cos(angle) * yy) * 2 * math.pi / period
    screen = (torch.cos(u) + torch.cos(v)) / 4  # (H, W) in [-0.5, 0.5]
    dots = (L + 100.0 * screen * rng.uniform(0.3, 0.8)).clamp(0, 100)
    return _gaussian_blur(dots, period / 3)


def dust(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    """Specks (dark dust on the print, white where the emulsion is gone) and long thin scratches."""
    H, W = L.shape
    out = L.clone()
    n = round(rng.randint(*cfg.dust) * H * W / 256**2)
    for _ in range(n):
        y, x, r = rng.randrange(H), rng.randrange(W), rng.choice((0, 0, 1, 1, 2))
        out[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = rng.choice((rng.uniform(0, 15), rng.uniform(85, 100)))
    for _ in range(rng.randint(*cfg.scratches)):
        value = rng.uniform(85, 100) if rng.random() < 0.7 else rng.uniform(0, 15)
        if rng.random() < 0.7:  # mostly along the film: vertical
            x0, x1 = rng.randrange(W), rng.randrange(W)
            ys = torch.arange(H)
            xs = (x0 + (x1 - x0) * ys / max(H - 1, 1) * 0.1).round().long().clamp(0, W - 1)
            keep = torch.rand(H, generator=torch.Generator().manual_seed(rng.getrandbits(63))) < 0.85
            out[ys[keep], xs[keep]] = value
        else:
            y = rng.randrange(H)
            out[y, rng.randrange(W // 2) : rng.randrange(W // 2, W)] = value
    return out


def jpeg(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig) -> torch.Tensor:
    """An earlier digitisation saved as a low-quality grey JPEG."""
    g8 = (L * 2.55).round().clamp(0, 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(g8).save(buf, "JPEG", quality=rng.randint(*cfg.jpeg))
    return torch.from_numpy(np.asarray(Image.open(buf), np.float32) / 2.55)


_FUNCTIONS = {"fade": fade, "exposure": exposure, "blur": blur, "grain": grain, "halftone": halftone, "dust": dust, "jpeg": jpeg}


def degrade(L: torch.Tensor, rng: random.Random, cfg: DegradeConfig, force: bool = False) -> tuple[torch.Tensor, list[str]]:
    """L (H, W) float in [0, 100] -> a degraded copy and the names of what was applied (in order).

    With probability `cfg.p` (always with `force`) at least one degradation is applied, each with
    probability `cfg.p_each`; halftone and grain exclude each other (a screened print has no grain)."""
    if not force and rng.random() >= cfg.p:
        return L, []
    chosen = [k for k in KINDS if rng.random() < cfg.p_each]
    if not chosen:
        chosen = [rng.choice(KINDS)]
    if "halftone" in chosen and "grain" in chosen:
        chosen.remove(rng.choice(("halftone", "grain")))
    out = L.float()
    for k in chosen:
        out = _FUNCTIONS[k](out, rng, cfg)
    return out.clamp(0, 100), chosen
