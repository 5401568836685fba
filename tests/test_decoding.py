import torch

from colorize_core.bins import canonical_bins
from colorize_core.decoding import annealed_mean, argmax_centroid, decode, entropy, mean, top_k_mean
from colorize_core.settings import DecodeConfig

CENTRES = torch.from_numpy(canonical_bins().centres)


def logits(seed=0):
    return torch.randn(2, 313, 5, 7, generator=torch.Generator().manual_seed(seed)) * 3


def test_temperature_one_is_the_mean():
    z = logits()
    p = torch.softmax(z, 1)
    expected = torch.einsum("bqhw,qc->bchw", p, CENTRES)
    assert torch.allclose(annealed_mean(z, CENTRES, 1.0), expected, atol=1e-4)
    assert torch.allclose(mean(z, CENTRES), expected, atol=1e-4)


def test_small_temperature_approaches_the_mode():
    z = logits(1)
    z = z + 0.5 * torch.nn.functional.one_hot(z.argmax(1), 313).permute(0, 3, 1, 2)  # a clear mode
    assert torch.allclose(annealed_mean(z, CENTRES, 1e-2), argmax_centroid(z, CENTRES), atol=1e-3)


def test_top_k_with_all_bins_is_the_annealed_mean():
    z = logits(2)
    assert torch.allclose(top_k_mean(z, CENTRES, 313, 0.38), annealed_mean(z, CENTRES, 0.38), atol=1e-3)
    assert torch.allclose(top_k_mean(z, CENTRES, 1, 0.38), argmax_centroid(z, CENTRES))


def test_decode_dispatch_and_shapes():
    z = logits(3)
    for method in ("annealed-mean", "argmax", "top-k", "mean"):
        ab = decode(z, CENTRES, DecodeConfig(method=method))
        assert ab.shape == (2, 2, 5, 7) and torch.isfinite(ab).all()
    assert entropy(z).shape == (2, 5, 7)


def test_annealing_gives_more_saturated_colours():
    z = logits(4)
    sat = lambda ab: ab.norm(dim=1).mean()
    assert sat(annealed_mean(z, CENTRES, 0.38)) > sat(mean(z, CENTRES))
