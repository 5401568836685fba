"""Evaluation protocol shared by training validation, the evaluate flow and the decoder fit.

One loop: validation images -> one forward pass per batch -> each decode upsampled as restoration
does -> metrics. Rebalanced AuC always weights pixels by the inverse ImageNet prior of their
canonical bin (the paper's protocol), so figures are comparable across models with different bin sets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .bins import canonical_bins
from .color import lab_to_rgb
from .colorize import chroma_at_working_size, hint_input
from .decoding import annealed_mean
from .degrade import DegradeConfig, degrade
from .encoding import SoftEncoder
from .hint_refiner import honour_hints
from .hints import Hint, rasterise
from .inference import Prediction, predict
from .metrics import AucAccumulator, colourfulness, psnr
from .settings import PAPER_TEMPERATURE, ColorizeConfig, DecodeConfig

PAPER_DECODES = {
    "annealed-mean": DecodeConfig("annealed-mean"),
    "mean": DecodeConfig("mean"),
    "argmax": DecodeConfig("argmax"),
}


class Evaluator:
    def __init__(self):
        self.auc, self.auc_rebalanced = AucAccumulator(), AucAccumulator()
        self.psnr, self.colourfulness, self.colourfulness_true = [], [], []

    def add(self, sample: "Sample", ab_pred: np.ndarray) -> None:
        """One image and its predicted ab (H, W, 2)."""
        ab_pred = np.asarray(ab_pred, np.float32)
        t = sample.truth()
        self.auc.add(ab_pred, sample.ab)
        self.auc_rebalanced.add(ab_pred, sample.ab, t.pixel_weights)
        rgb_pred = lab_to_rgb(np.concatenate([sample.L[..., None], ab_pred], -1))
        self.psnr.append(psnr(rgb_pred, t.rgb))
        self.colourfulness.append(colourfulness(rgb_pred * 255))
        self.colourfulness_true.append(t.colourfulness)

    def summary(self) -> dict[str, float]:
        c, ct = np.asarray(self.colourfulness), np.asarray(self.colourfulness_true)
        return {
            "auc": self.auc.value,
            "auc_rebalanced": self.auc_rebalanced.value,
            "psnr": float(np.mean(self.psnr)),
            "colourfulness": float(c.mean()),
            "colourfulness_true": float(ct.mean()),
            "delta_colourfulness": float(c.mean() - ct.mean()),  # right on average ...
            "abs_delta_colourfulness": float(np.abs(c - ct).mean()),  # ... and right on each image
            "images": len(self.psnr),
        }


@dataclass
class Truth:
    rgb: np.ndarray  # (H, W, 3) in [0, 1]
    colourfulness: float
    pixel_weights: np.ndarray  # (H, W) inverse ImageNet prior of each pixel's canonical bin


_CANONICAL: tuple | None = None


@dataclass
class Sample:
    """A validation image: clean L (H, W), true ab (H, W, 2), and the L the network sees (degraded or not)."""

    L: np.ndarray
    ab: np.ndarray
    L_in: np.ndarray
    _truth: Truth | None = None

    def truth(self) -> Truth:
        """What every decode is scored against, computed once (the decoder fit scores many)."""
        global _CANONICAL
        if self._truth is None:
            if _CANONICAL is None:
                canon = canonical_bins()
                _CANONICAL = (SoftEncoder(canon), 1.0 / canon.prior)
            encoder, inv_prior = _CANONICAL
            hard = encoder.hard(torch.from_numpy(np.round(self.ab).astype(np.int8))).numpy()
            rgb = lab_to_rgb(np.concatenate([self.L[..., None], self.ab], -1))
            self._truth = Truth(rgb, colourfulness(rgb * 255), inv_prior[hard])
        return self._truth


def samples(images: Iterable[tuple[np.ndarray, np.ndarray]], degraded: DegradeConfig | None = None, seed: int = 0) -> Iterator[Sample]:
    """(L, ab) pairs -> Samples; with `degraded`, every image's L is degraded (seeded by its index),
    so a degraded copy of a validation set is the same copy every time."""
    for i, (L, ab) in enumerate(images):
        L = np.asarray(L, np.float32)
        L_in = L
        if degraded is not None:
            L_in = degrade(torch.from_numpy(L), random.Random(f"{seed}-{i}"), degraded, force=True)[0].numpy()
        yield Sample(L, np.asarray(ab, np.float32), L_in)


def predicted(pkg, items: Iterable[Sample], batch: int = 8, bf16: bool = False) -> Iterator[tuple[list[Sample], Prediction]]:
    """Batches of samples with the network's prediction on their L_in: one forward pass each, on the
    model's device; the logits come back to the CPU, where scoring (numpy) happens."""

    def run(buf: list[Sample]) -> Prediction:
        p = predict(pkg.model, torch.stack([torch.from_numpy(x.L_in) for x in buf])[:, None], bf16)
        return Prediction(*(t.cpu() if t is not None else None for t in (p.logits, p.regressed)))

    buf: list[Sample] = []
    for s in items:
        buf.append(s)
        if len(buf) == batch:
            yield buf, run(buf)
            buf = []
    if buf:
        yield buf, run(buf)


def prior_mean_ab(bins, temperature: float = PAPER_TEMPERATURE) -> np.ndarray:
    """The baseline that paints every pixel the annealed mean of the training prior: (2,) ab."""
    prior = bins.smoothed_prior if bins.smoothed_prior is not None else bins.prior
    logits = torch.from_numpy(np.log(np.maximum(prior, 1e-12))).float()[None, :, None, None]  # (1, Q, 1, 1)
    return annealed_mean(logits, torch.from_numpy(bins.centres), temperature)[0, :, 0, 0].numpy()


def evaluate(
    pkg,
    batches: Iterable[tuple[list[Sample], Prediction]],
    configs: dict[str, ColorizeConfig],
    baselines: bool = True,
    on_batch: Callable[[list[Sample], Prediction], None] | None = None,
) -> dict[str, dict]:
    """Metrics of the model under each named configuration (and of the gray and prior-mean
    baselines), over predicted batches (`predicted`, or a cached list of them to score many configs)."""
    evs = {f"model/{k}": Evaluator() for k in configs}
    if baselines:
        evs |= {"baseline/gray": Evaluator(), "baseline/prior-mean": Evaluator()}
        prior_ab = prior_mean_ab(pkg.bins)
    for chunk, pred in batches:
        L_in = torch.stack([torch.from_numpy(s.L_in) for s in chunk])[:, None]  # (B, 1, H, W)
        for name, cfg in configs.items():
            ab = chroma_at_working_size(pkg, L_in, pred, cfg)  # (B, 2, H, W)
            for s, a in zip(chunk, ab):
                evs[f"model/{name}"].add(s, a.permute(1, 2, 0).numpy())
        if baselines:
            for s in chunk:
                evs["baseline/gray"].add(s, np.zeros_like(s.ab))
                evs["baseline/prior-mean"].add(s, np.broadcast_to(prior_ab, s.ab.shape))
        if on_batch is not None:
            on_batch(chunk, pred)
    return {k: ev.summary() for k, ev in evs.items() if ev.psnr}


def standard_configs(pkg, base: ColorizeConfig = ColorizeConfig()) -> dict[str, ColorizeConfig]:
    """The package's own decode (the default of restore), then the paper's three by name."""
    out = {"default": base.resolved(pkg.decode)}
    for name, d in PAPER_DECODES.items():
        out[name] = ColorizeConfig(decode=d, upsample=base.upsample, size=base.size)
    return out


HINT_COUNTS = (0, 1, 5, 10, 20)
HINT_RADIUS = 0.01  # of the long side, as a curator's click


def simulated_curator_hints(sample: Sample, n: int, rng: np.random.Generator, radius: float = HINT_RADIUS) -> tuple[Hint, ...]:
    """`n` hints at uniform random points, each the mean true ab within its radius: what a curator who
    knows the colours would place (the evaluation's hints, seeded; the hint refiner trains on them too)."""
    H, W = sample.L.shape
    out = []
    for x, y in rng.random((n, 2)):
        _, mask = rasterise((Hint(float(x), float(y), radius, (0.0, 0.0)),), (H, W), (H, W))
        a, b = sample.ab[mask].mean(0)
        out.append(Hint(float(x), float(y), radius, (float(a), float(b))))
    return tuple(out)


def evaluate_hints(
    pkg, items: list[Sample], counts: Iterable[int] = HINT_COUNTS, classic_pkg=None, seed: int = 0, bf16: bool = False
) -> dict[int, dict[str, dict]]:
    """{hint count: {method: metrics}} on the same simulated hints for every method, each at the working
    size, decoded as its package says: "model with hints" (what restore makes of `pkg` with the hints:
    its input when it takes hints, else spread along L's edges from its colours and refined where it has a
    hint refiner), "classic optimisation" (Levin et al. 2004 alone: the hints spread from gray, no network,
    no training), gray, "model, spread unrefined" when `pkg` has a refiner (what it adds), and, when `pkg`
    takes hints and `classic_pkg` is given, "propagation on model" (the hints spread from the colours of
    `classic_pkg`, a model without hint input: what a hint network has to beat to be worth it)."""
    out = {}
    refiner = getattr(pkg.model, "hint_refiner", None)
    for n in counts:
        rng = np.random.default_rng(seed)
        evs = {"model with hints": Evaluator(), "classic optimisation": Evaluator(), "gray": Evaluator()}
        spread_on_classic = classic_pkg is not None and pkg.model.cfg.hint_input
        if spread_on_classic:
            evs["propagation on model"] = Evaluator()
        if refiner is not None:
            evs["model, spread unrefined"] = Evaluator()  # what the refiner adds
        for s in items:
            hints = simulated_curator_hints(s, n, rng)
            L = torch.from_numpy(s.L_in)[None, None]  # (1, 1, H, W)
            grid = tuple(s.L.shape)
            hint_ab, mask = rasterise(hints, grid, grid)

            def spread_from(prior: np.ndarray, refiner=None) -> np.ndarray:  # (2, H, W) -> (H, W, 2)
                return honour_hints(s.L_in, prior, hint_ab, mask, len(hints), refiner).transpose(1, 2, 0)

            def colours(p, given=None) -> np.ndarray:  # (2, H, W)
                return chroma_at_working_size(p, L, predict(p.model, L, bf16, given), ColorizeConfig().resolved(p.decode))[0].numpy()

            if pkg.model.cfg.hint_input:
                evs["model with hints"].add(s, colours(pkg, hint_input(hints, grid, grid)[None]).transpose(1, 2, 0))
            else:
                own = colours(pkg)
                evs["model with hints"].add(s, spread_from(own, refiner))
                if refiner is not None:
                    evs["model, spread unrefined"].add(s, spread_from(own))
            if spread_on_classic:
                evs["propagation on model"].add(s, spread_from(colours(classic_pkg), getattr(classic_pkg.model, "hint_refiner", None)))
            evs["classic optimisation"].add(s, spread_from(np.zeros((2, *grid), np.float32)))
            evs["gray"].add(s, np.zeros_like(s.ab))
        out[n] = {k: ev.summary() for k, ev in evs.items()}
    return out
