"""Archival-scan degradations of L: bounded, deterministic, applied to L only."""

import random

import numpy as np
import pytest
import torch

from colorize_core.data import AugmentConfig, augment
from colorize_core.degrade import KINDS, DegradeConfig, degrade


@pytest.fixture()
def L(real_photos):
    from colorize_core.color import rgb_to_lab

    return torch.from_numpy(rgb_to_lab(real_photos["chelsea.png"][:160, :200])[..., 0].astype(np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_each_degradation_changes_L_within_range_and_is_seeded(L, kind):
    cfg = DegradeConfig(p=1.0, p_each=0.0)
    only = lambda seed: degrade(L, _RngPicking(seed, kind), cfg, force=True)  # noqa: E731
    a, applied = only(1)
    b, _ = only(1)
    assert applied == [kind]
    assert a.shape == L.shape and float(a.min()) >= 0 and float(a.max()) <= 100
    assert torch.equal(a, b), "same seed, same degradation"
    assert float((a - L).abs().mean()) > 0.2, "it changes the image"


class _RngPicking(random.Random):
    """A Random whose first choice of degradations is the one under test."""

    def __init__(self, seed, kind):
        super().__init__(seed)
        self.kind = kind

    def choice(self, seq):
        return self.kind if tuple(seq) == KINDS else super().choice(seq)


def test_probability_zero_is_the_identity_and_one_always_degrades(L):
    assert torch.equal(degrade(L, random.Random(0), DegradeConfig(p=0.0))[0], L)
    for s in range(20):
        out, applied = degrade(L, random.Random(s), DegradeConfig(p=1.0))
        assert applied and not ("halftone" in applied and "grain" in applied)


def test_augment_degrades_L_and_leaves_ab_alone(rng):
    L = (rng.random((128, 128)) * 100).astype(np.float32)
    ab = rng.integers(-60, 60, (128, 128, 2)).astype(np.int8)
    clean = augment(L, ab, AugmentConfig(crop=96), random.Random(3))
    dirty = augment(L, ab, AugmentConfig(crop=96, degrade=DegradeConfig(p=1.0)), random.Random(3))
    assert torch.equal(clean[1], dirty[1]), "the colour target is the clean one"
    assert not torch.equal(clean[0], dirty[0])
