"""The compiled full-resolution path (`kernels`) against plain float64 colour science and torch."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorize_core.color import gray_to_l, rgb_to_lab
from colorize_core.colorize import join_full_resolution, network_input, preview_pair
from colorize_core.imageio import DecodedImage
from colorize_core.kernels import box_mean
from colorize_core.settings import UpsampleConfig
from colorize_core.upsample import ChromaField


def _grey(pixels):
    return DecodedImage(pixels=pixels, alpha=None, format="PNG", mode="L", icc_profile=None, exif=None)


XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])


def _linear_srgb(L, a, b):
    """CIE Lab (D65) -> linear sRGB in float64, written out from the definitions, unclipped."""
    fy = (L.astype(np.float64) + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200], -1)
    xyz = np.where(f > 6 / 29, f**3, (f - 16 / 116) / 7.787) * np.array([0.95047, 1.0, 1.08883])  # D65, 2 degrees
    return xyz @ np.linalg.inv(XYZ_FROM_RGB).T


@pytest.fixture(scope="module")
def field_and_image(rng):
    H, W = 301, 517  # not a multiple of the strip height
    grey = (np.linspace(0, 255, W)[None, :] * np.linspace(0.2, 1, H)[:, None]).astype(np.uint8)
    L_small = torch.from_numpy(rng.random((256, 256), dtype=np.float32) * 100)
    ab_small = torch.from_numpy((rng.random((2, 64, 64), dtype=np.float32) - 0.5) * 160)  # many colours outside sRGB
    return grey, L_small, ab_small


@pytest.mark.parametrize("method", ["bilinear", "guided"])
def test_join_is_lab_to_srgb_with_the_original_l(field_and_image, method):
    grey, L_small, ab_small = field_and_image
    field = ChromaField(L_small, ab_small, grey.shape, UpsampleConfig(method))
    rgb = join_full_resolution(_grey(grey), field, strip_rows=64)
    L = gray_to_l(grey)
    ab = field.rows(0, grey.shape[0], torch.from_numpy(L)).numpy()  # (2, H, W)
    lin = _linear_srgb(L, ab[0], ab[1])  # (H, W, 3) float64, unclipped
    ref = np.where(lin > 0.0031308, 1.055 * np.clip(lin, 0.0031308, 1) ** (1 / 2.4) - 0.055, 12.92 * lin).clip(0, 1)  # clipped in RGB
    inside = ((lin > 1e-4) & (lin < 1 - 1e-4)).all(-1)
    assert 0.05 < (~inside).mean() < 0.9  # both kinds of pixel are tested
    diff = np.abs(rgb.astype(int) - np.round(ref * 255).astype(int))[inside]
    assert diff.max() <= 1  # in gamut: the exact conversion, to the code
    got_l = rgb_to_lab(rgb)[..., 0]
    assert np.abs(got_l - L).max() < 1.5 and np.abs(got_l - L).mean() < 0.3  # out of gamut: chroma lost, L kept
    clipped_l = rgb_to_lab((ref * 255).round().astype(np.uint8))[..., 0]
    assert np.abs(clipped_l - L)[~inside].mean() > 3 * np.abs(got_l - L)[~inside].mean()  # what clipping would do


def test_sixteen_bit_join_matches_eight_bit_and_keeps_l(field_and_image, rng):
    grey, L_small, ab_small = field_and_image
    g16 = grey.astype(np.uint16) * 257 + rng.integers(0, 257, grey.shape).astype(np.uint16)
    field = ChromaField(L_small, ab_small / 4, grey.shape, UpsampleConfig())
    rgb16 = join_full_resolution(_grey(g16), field)
    assert rgb16.dtype == np.uint16
    assert np.abs(rgb_to_lab(rgb16.astype(np.float32) / 65535)[..., 0] - gray_to_l(g16)).mean() < 0.05
    rgb8 = join_full_resolution(_grey(grey), field)
    assert np.abs((rgb16 / 257.0) - rgb8).mean() < 1.0


def test_a_sixteen_bit_scan_many_times_the_working_size_reaches_the_network_as_its_eight_bits_do():
    """Pillow reduces no 16-bit grey: a scan four times the working size failed before it was resized as float."""
    ramp = (np.linspace(0, 1, 2048 * 1500).reshape(2048, 1500) * 65535).astype(np.uint16)
    L16, L8 = network_input(_grey(ramp), 256), network_input(_grey((ramp >> 8).astype(np.uint8)), 256)
    assert L16.shape == (256, 256) and float((L16 - L8).abs().max()) < 0.5


def test_box_mean_is_the_clipped_window_mean(rng):
    x = rng.random((3, 40, 57), dtype=np.float32)
    out = np.empty_like(x)
    for r in (1, 4, 9):
        box_mean(x, r, out)
        ref = F.avg_pool2d(torch.from_numpy(x)[None], 2 * r + 1, stride=1, padding=r, count_include_pad=False)[0]
        assert np.abs(out - ref.numpy()).max() < 1e-5
    box_mean(x, 60, out)  # a window wider than the image: every pixel gets the image's mean
    assert np.allclose(out, x.mean(axis=(1, 2), keepdims=True), atol=1e-5)


def test_bilinear_field_is_torch_bilinear(field_and_image):
    grey, L_small, ab_small = field_and_image
    field = ChromaField(L_small, ab_small, grey.shape, UpsampleConfig("bilinear"))
    ab = field.rows(0, grey.shape[0], torch.zeros(grey.shape))
    ref = F.interpolate(F.interpolate(ab_small[None], size=(256, 256), mode="bilinear"), size=grey.shape, mode="bilinear")[0]
    assert (ab - ref).abs().max() < 1e-3


def test_review_previews_are_the_output_reduced():
    """The colour preview is joined at preview size from the image's field: the same picture as
    reducing the full-resolution output (to about a code), not a different colouring."""
    from colorize_core.writer import preview

    H, W = 600, 900
    grey = (np.linspace(20, 235, W)[None, :] * np.linspace(0.5, 1, H)[:, None]).astype(np.uint8)
    grey[200:400, 300:500] = 40  # an edge the guided field follows
    y, x = torch.meshgrid(torch.linspace(0, 3, 64), torch.linspace(0, 3, 64), indexing="ij")
    ab_small = torch.stack([40 * torch.sin(x), 40 * torch.cos(y)])  # smooth chroma, some of it out of gamut
    L_small = torch.from_numpy(gray_to_l(np.asarray(Image.fromarray(grey).resize((256, 256), Image.BILINEAR))))
    field = ChromaField(L_small, ab_small, (H, W), UpsampleConfig())
    rgb = join_full_resolution(_grey(grey), field)
    src, colour = preview_pair(_grey(grey), field, 300)
    assert src.size == colour.size == preview(rgb, 300).size == (300, 200)
    assert np.array_equal(np.asarray(src), np.asarray(preview(grey, 300)))
    diff = np.abs(np.asarray(colour, dtype=int) - np.asarray(preview(rgb, 300), dtype=int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4
    assert np.abs(np.asarray(colour, dtype=int) - np.asarray(src, dtype=int)[..., None]).mean() > 10  # it is in colour


def test_the_core_runs_where_nothing_can_be_written_beside_it(tmp_path):
    """An image or a shared site-packages: numba must not need to write beside the module, nor in a
    home folder. A file where its __pycache__ would go stops it writing there, even as root."""
    import os
    import shutil
    import subprocess
    import sys

    core = tmp_path / "site" / "colorize_core"
    shutil.copytree(Path(__file__).resolve().parents[1] / "colorize_core", core, ignore=shutil.ignore_patterns("__pycache__"))
    (core / "__pycache__").write_text("not a folder")
    code = (
        "import numpy as np, torch\n"
        "from colorize_core.colorize import join_full_resolution\n"
        "from colorize_core.imageio import DecodedImage\n"
        "from colorize_core.upsample import ChromaField, UpsampleConfig\n"
        "img = DecodedImage(np.full((40, 60), 128, np.uint8), None, 'PNG', 'L', None, None)\n"
        "field = ChromaField(torch.full((256, 256), 50.0), torch.full((2, 64, 64), 20.0), (40, 60), UpsampleConfig())\n"
        "print(join_full_resolution(img, field)[0, 0].tolist())\n"
    )
    no_home = str(tmp_path / "site" / "colorize_core" / "__pycache__" / "home")  # under a file: never writable
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(HOME=no_home, XDG_CACHE_HOME=no_home, PYTHONPATH=str(core.parent))
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    r, g, b = eval(res.stdout)
    assert r > g and r > b  # a = b = 20 at L ~ 54: a warm colour, computed by the compiled join
