"""Safe image decoding shared by every flow: one typed error naming the item and the reason."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageReadError(Exception):
    """An input that cannot be used, with the item's name and a reason a curator can act on."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ReaderConfig:
    max_pixels: int = 150_000_000  # refuse larger images (decompression bombs); Pillow stops at 179 M
    min_side: int = 1
    # refuse stranger shapes: the network sees the image at a fixed short side, so a 100,000,000 x 1
    # strip (97 KB as a PNG, inside the pixel limit) would be scaled to a working size of billions of
    # pixels; panoramas and scrolls stay well below 100:1
    max_aspect: float = 100.0


@dataclass
class DecodedImage:
    pixels: np.ndarray  # (H, W) gray or (H, W, 3) RGB; uint8, or uint16 for 16-bit sources
    alpha: np.ndarray | None  # (H, W) of the same dtype, when the source had transparency
    format: str  # JPEG, PNG, TIFF, WEBP, ...
    mode: str  # the source's Pillow mode
    icc_profile: bytes | None
    exif: bytes | None
    source_size: tuple[int, int] | None = None  # (height, width) of the source when decoded reduced

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return self.pixels.shape[0], self.pixels.shape[1]

    def rgb8(self) -> np.ndarray:
        """(H, W, 3) uint8 view for training and previews."""
        px = self.pixels if self.bit_depth == 8 else (self.pixels.astype(np.uint32) * 255 + 32767) // 65535
        px = px.astype(np.uint8)
        return np.repeat(px[..., None], 3, axis=-1) if px.ndim == 2 else px


def _to_array(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16), None
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "1":
        img = img.convert("L")
        mode = "L"
    if mode == "LA":
        a = np.asarray(img)
        return np.ascontiguousarray(a[..., 0]), np.ascontiguousarray(a[..., 1])
    if mode == "RGBA":
        a = np.asarray(img)
        return np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3])
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        img = img.convert("RGB")
        mode = "RGB"
    if mode in ("L", "RGB"):
        return np.asarray(img).copy(), None
    raise ImageReadError("", f"unsupported image mode {mode}")


def decode_image(data: bytes, name: str, cfg: ReaderConfig = ReaderConfig(), at_least: int | None = None) -> DecodedImage:
    """Decodes bytes to pixels with EXIF orientation applied; raises ImageReadError, never anything else.

    `at_least`: the caller needs only this many pixels on the short side (training shards), so a
    JPEG is decoded at the smallest of libjpeg's 1/2, 1/4, 1/8 scales that still has them (the
    inverse DCT at reduced size is cheaper). The size
    limit still applies to the declared size; `source_size` records it."""
    if not data:
        raise ImageReadError(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > cfg.max_pixels:
                raise ImageReadError(name, f"too large: {w} x {h} pixels exceeds the limit of {cfg.max_pixels}")
            if min(w, h) < cfg.min_side:
                raise ImageReadError(name, f"too small: {w} x {h} pixels")
            if max(w, h) > cfg.max_aspect * min(w, h):
                raise ImageReadError(name, f"too elongated: {w} x {h} pixels, beyond the limit of {cfg.max_aspect:g}:1 between the sides")
            fmt = img.format or "UNKNOWN"
            src_mode = img.mode
            if at_least and fmt == "JPEG" and min(w, h) >= 2 * at_least:
                scale = at_least / min(w, h)
                img.draft(img.mode, (math.ceil(w * scale), math.ceil(h * scale)))
            reduced = img.size != (w, h)
            img.load()
            icc = img.info.get("icc_profile")
            turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # orientations that swap the sides
            img = ImageOps.exif_transpose(img)  # also drops the orientation tag
            exif = img.getexif()
            exif_bytes = exif.tobytes() if len(exif) else None
            pixels, alpha = _to_array(img)
    except ImageReadError as e:
        raise ImageReadError(name, e.reason) from None
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(name, f"too large: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason or isinstance(e, EOFError):
            reason = f"truncated or corrupt: {reason}"
        raise ImageReadError(name, f"cannot decode: {reason}") from None
    full = ((w, h) if turned else (h, w)) if reduced else None
    return DecodedImage(pixels=pixels, alpha=alpha, format=fmt, mode=src_mode, icc_profile=icc, exif=exif_bytes, source_size=full)
