import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorize_core import color


@pytest.fixture(scope="module")
def million_rgb(rng):
    return rng.random((1000, 1000, 3))


def test_rgb_to_lab_matches_skimage(million_rgb):
    ours = color.rgb_to_lab(million_rgb.astype(np.float32))
    ref = skcolor.rgb2lab(million_rgb.astype(np.float32))
    assert np.abs(ours - ref).max() < 1e-3


def test_uint8_path_matches_skimage(rng):
    rgb = rng.integers(0, 256, (500, 500, 3), dtype=np.uint8)
    assert np.abs(color.rgb_to_lab(rgb) - skcolor.rgb2lab(rgb)).max() < 1e-3


def test_compiled_uint8_path_over_the_colour_cube():
    """Every 5th code of each channel (0 and 255 included), and every colour of the dark corner where
    f(t) switches to its linear branch: within 2e-4 of scikit-image's float64 Lab (the table-and-Newton
    cube root must not be what limits it); L alone is the same L."""
    steps = np.r_[0:256:5, 255].astype(np.uint8)
    dark = np.arange(24, dtype=np.uint8)
    cube = np.concatenate([np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3) for v in (steps, dark)])[None]
    lab = color.rgb_to_lab(cube)
    assert np.abs(lab - skcolor.rgb2lab(cube)).max() < 2e-4
    assert np.array_equal(color.rgb_to_l(cube), lab[..., 0])


def test_lab_to_rgb_matches_skimage(million_rgb):
    lab = skcolor.rgb2lab(million_rgb)
    ours = color.lab_to_rgb(lab)
    ref = skcolor.lab2rgb(lab)
    assert np.abs(ours - ref).max() < 1e-3
    assert np.abs(ours - million_rgb).max() < 1 / 255  # round trip


def test_gray_path_equals_rgb_path(rng):
    g = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    lab = color.rgb_to_lab(np.repeat(g[..., None], 3, -1))
    assert np.abs(color.gray_to_l(g) - lab[..., 0]).max() < 1e-3
    assert np.abs(lab[..., 1:]).max() < 0.05  # gray is (nearly) achromatic
    back = color.l_to_gray(color.gray_to_l(g))
    assert np.abs(back * 255 - g).max() < 0.5


def test_sixteen_bit_gray(rng):
    g16 = rng.integers(0, 65536, (32, 32)).astype(np.uint16)
    ref = skcolor.rgb2lab(np.repeat((g16 / 65535.0)[..., None], 3, -1))[..., 0]
    assert np.abs(color.gray_to_l(g16) - ref).max() < 1e-3


def test_torch_batch_first():
    rgb = torch.rand(2, 300, 500, 3)  # several cache blocks
    lab = color.rgb_to_lab_torch(rgb)
    assert lab.shape == (2, 300, 500, 3)
    assert torch.allclose(color.lab_to_rgb_torch(lab), rgb, atol=1 / 255)
