"""Colorizing images: the one path every caller takes (restore, image, the pyfunc, evaluation, training
validation). Three named steps, as in the reference: network input -> prediction -> full resolution.

The network sees the image at the working size; the predicted ab is brought to the original size
(guided by the original's own L, see `upsample`) strip by strip and joined with the ORIGINAL
full-resolution L, so the archive's detail is never altered: only chroma is added. Colours outside
sRGB lose chroma, never lightness.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .color import gamut_tables, gray_to_l, rgb_to_l
from .hint_refiner import honour_hints
from .hints import rasterise
from .imageio import DecodedImage
from .engines import Engine, choose, run
from .inference import Prediction
from .kernels import field_rows, srgb_rows
from .settings import ColorizeConfig, DecodeConfig
from .upsample import ChromaField
from .writer import preview


@dataclass
class Colorized:
    rgb: np.ndarray  # (H, W, 3) of the source's depth
    doubt: float  # mean entropy / log Q over the image: the model's doubt, 0 (sure) .. 1
    doubt_map: np.ndarray | None  # (h, w) uint8 picture of the doubt, white where unsure (when asked)
    previews: tuple[Image.Image, Image.Image] | None = None  # (source, colorized), 8-bit, when asked


def network_input(img: DecodedImage, size: int) -> torch.Tensor:
    """(size, size) L for the network: the image resized (aspect ignored, as the reference does)."""
    px = img.pixels if img.is_gray else img.rgb8()
    if px.dtype == np.uint16:  # Pillow cannot reduce 16-bit grey (a scan four times the size failed): resized as float
        px = px.astype(np.float32) / 65535.0
    small = np.asarray(Image.fromarray(px).resize((size, size), Image.BILINEAR, reducing_gap=2.0))
    return torch.from_numpy(gray_to_l(small) if small.ndim == 2 else rgb_to_l(small))


def _l_strip(img: DecodedImage, r0: int, r1: int) -> np.ndarray:
    px = img.pixels[r0:r1]
    if img.is_gray:
        return gray_to_l(px)
    return rgb_to_l(px if img.bit_depth == 8 else px.astype(np.float32) / 65535.0)


STRIP_PIXELS = 1 << 21  # a strip's L, ab and temporaries: about 80 MB at most, whatever the image's width


def join_full_resolution(img: DecodedImage, field: ChromaField, strip_rows: int = 64) -> np.ndarray:
    """The original's L + the chroma field -> (H, W, 3) sRGB of the original's depth, strip by strip:
    memory is the input and output arrays plus one strip of L (fewer rows for very wide images)."""
    H, W = img.size
    out = np.empty((H, W, 3), np.uint16 if img.bit_depth == 16 else np.uint8)
    table, lut8, steps = gamut_tables()
    strip_rows = max(1, min(strip_rows, STRIP_PIXELS // W))
    for r in range(0, H, strip_rows):
        L = np.ascontiguousarray(_l_strip(img, r, r + strip_rows), dtype=np.float32)  # (rows, W)
        ab = np.empty((2, *L.shape), np.float32)  # the strip's chroma
        field_rows(*field.band(r, r + L.shape[0]), L, ab)
        srgb_rows(L, ab, table, lut8, steps, img.bit_depth == 16, out[r : r + L.shape[0]])
    return out


def preview_pair(img: DecodedImage, field: ChromaField, side: int) -> tuple[Image.Image, Image.Image]:
    """(source, colorized) pictures of at most `side` pixels a side, for review pages: the source
    box-reduced, then colorized at that size from the image's own chroma field. The same colours as
    reducing the full-resolution output, at less than half its cost."""
    src = preview(img.pixels, side)
    small = DecodedImage(pixels=np.asarray(src), alpha=None, format="PNG", mode=src.mode, icc_profile=None, exif=None)
    return src, Image.fromarray(join_full_resolution(small, field.at(small.size)))


def doubt_picture(doubt: torch.Tensor, size: tuple[int, int], max_side: int) -> np.ndarray:
    """(h, w) doubt in [0, 1] -> uint8 picture at most `max_side` a side, in the image's aspect."""
    H, W = size
    s = min(1.0, max_side / max(H, W))
    img = Image.fromarray(doubt.clamp(0, 1).mul(255).round().byte().numpy())
    return np.asarray(img.resize((max(1, round(W * s)), max(1, round(H * s))), Image.BILINEAR))


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


class ColorizedBatch:
    """Images colorized together: one forward pass for all of them at construction, then each image's
    full-resolution join on request (`colorized(i)`), so a caller can write and release each in turn."""

    def __init__(
        self, pkg, images: list[DecodedImage], cfg: ColorizeConfig = ColorizeConfig(), engine: Engine = Engine(), hints: list | None = None
    ):
        """`hints`: each image's curator hints (a tuple of `hints.Hint`, empty for none): the network's
        input when it takes hints (Zhang et al. 2017), else spread along the image's edges with the
        network's colours as the prior (Levin et al. 2004)."""
        self.images, self.cfg = list(images), cfg.resolved(pkg.decode)
        self.hints = hints or [()] * len(self.images)
        self.refiner = getattr(pkg.model, "hint_refiner", None)
        self.L_small = torch.stack([network_input(img, self.cfg.size) for img in images])  # (B, S, S)
        given = None
        if pkg.model.cfg.hint_input and any(self.hints):
            grid = tuple(self.L_small.shape[1:])
            given = torch.stack([hint_input(h, grid, img.size) for h, img in zip(self.hints, self.images)])  # (B, 3, S, S)
            self.hints = [()] * len(self.images)  # honoured by the network itself
        pred = run(pkg.model, self.L_small[:, None], engine, given)
        self.ab_small, self.doubt = decoded(pkg, pred, self.cfg.decode).cpu(), pred.doubt().cpu()  # (B, 2, h, w), (B, h, w)

    def colorized(self, i: int, preview_side: int = 0) -> Colorized:
        """Image i at full resolution, and its `preview_pair` when `preview_side` is given; asked once
        per image (the batch lets go of it afterwards)."""
        img, cfg = self.images[i], self.cfg
        self.images[i] = None
        field = ChromaField(self.L_small[i], self.hinted_ab(i, img.size), img.size, cfg.upsample)
        return Colorized(
            rgb=join_full_resolution(img, field, cfg.strip_rows),
            doubt=float(self.doubt[i].mean()),
            doubt_map=doubt_picture(self.doubt[i], img.size, cfg.uncertainty_max_side) if cfg.uncertainty else None,
            previews=preview_pair(img, field, preview_side) if preview_side else None,
        )

    def preview(self, i: int, side: int) -> Image.Image:
        """Image i colorized at most `side` pixels a side, without its full-resolution join: what the
        review page's colour tool redraws after each change (the batch's own preview, the same colours)."""
        img = self.images[i]
        return preview_pair(img, ChromaField(self.L_small[i], self.hinted_ab(i, img.size), img.size, self.cfg.upsample), side)[1]

    def hinted_ab(self, i: int, size: tuple[int, int]) -> torch.Tensor:
        """Image i's ab at the network's output size, or with its hints at the working size (S, S)."""
        if not self.hints[i]:
            return self.ab_small[i]
        L = self.L_small[i]  # (S, S)
        prior = ChromaField(L, self.ab_small[i], tuple(L.shape), self.cfg.upsample).rows(0, L.shape[0], L)  # (2, S, S), as evaluated
        hint_ab, mask = rasterise(self.hints[i], tuple(L.shape), size)
        return torch.from_numpy(honour_hints(L.numpy(), prior.numpy(), hint_ab, mask, len(self.hints[i]), self.refiner))


def hint_input(hints: tuple, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(3, S, S): the hints' ab and mask as a network with hint input takes them."""
    ab, mask = rasterise(hints, grid, size)
    return torch.from_numpy(np.concatenate([ab, mask[None].astype(np.float32)]))


def decoded(pkg, pred: Prediction, decode_cfg: DecodeConfig) -> torch.Tensor:
    """(B, 2, h, w) ab of a prediction under a decode, with the package's bins and weights."""
    if pred.logits is None:  # a network that regresses ab: nothing to decode
        return pred.regressed
    device = pred.logits.device
    weights = torch.from_numpy(pkg.bins.weights).to(device) if pkg.bins.weights is not None else None
    return pred.ab(decode_cfg, pkg.model.centres.to(device), weights)


def chroma_at_working_size(pkg, L: torch.Tensor, pred: Prediction, cfg: ColorizeConfig) -> torch.Tensor:
    """L (B, 1, H, W) at the working size and its prediction -> ab (B, 2, H, W), upsampled as full-
    resolution restoration does: what evaluation and training validation score."""
    cfg = cfg.resolved(pkg.decode)
    ab_small = decoded(pkg, pred, cfg.decode)
    H, W = L.shape[-2:]
    return torch.stack([ChromaField(L[i, 0], ab_small[i], (H, W), cfg.upsample).rows(0, H, L[i, 0]) for i in range(len(L))])


def colorize_array(pkg, gray: np.ndarray, cfg: ColorizeConfig = ColorizeConfig()) -> np.ndarray:
    """A grey (H, W) uint8/uint16 array -> (H, W, 3) colour array of the same depth (the pyfunc's path)."""
    img = DecodedImage(pixels=np.asarray(gray), alpha=None, format="PNG", mode="L", icc_profile=None, exif=None)
    return ColorizedBatch(pkg, [img], cfg).colorized(0).rgb


def choose_engine(pkg, L: torch.Tensor) -> tuple[Engine, dict]:
    """The engine that restores with `pkg` here (see `engines.choose`), measured on photographs' L
    (B, 1, S, S) at the working size, its colours decoded as the package decodes them."""
    return choose(pkg.model.eval(), L.to(next(pkg.model.parameters()).device), lambda pred: decoded(pkg, pred, pkg.decode))
