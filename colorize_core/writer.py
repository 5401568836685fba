"""Encoding outputs: the counterpart of the reader (`imageio`). Same format and depth as the source,
its ICC profile and EXIF kept where they still apply, provenance inside."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

from .imageio import DecodedImage
from .provenance import SOFTWARE, provenance_text, xmp_packet


def output_format(src_format: str) -> tuple[str, str | None]:
    """(format to write, new extension or None to keep the source's)."""
    if src_format in ("JPEG", "MPO"):
        return "JPEG", None
    if src_format == "PNG":
        return "PNG", None
    if src_format == "TIFF":
        return "TIFF", None
    return "PNG", ".png"  # WebP, BMP, GIF, ... become lossless PNG


def _png16(rgb: np.ndarray, alpha: np.ndarray | None, texts: dict[str, str]) -> bytes:
    """A 16-bit RGB(A) PNG (Pillow writes 16 bits for grey only), with iTXt provenance chunks."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    px = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], -1)
    h, w, c = px.shape
    raw = np.zeros((h, 1 + w * c * 2), np.uint8)  # filter byte 0 per row
    raw[:, 1:] = px.astype(">u2").view(np.uint8).reshape(h, -1)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6 if alpha is not None else 2, 0, 0, 0)
    itxt = b"".join(chunk(b"iTXt", k.encode() + b"\0\0\0\0\0" + v.encode("utf-8")) for k, v in texts.items())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + itxt + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")


def encode_output(rgb: np.ndarray, img: DecodedImage, prov: dict) -> bytes:
    """The colour image in the source's format, with provenance, and the source's ICC and EXIF where
    they still apply (a grey ICC profile does not describe an RGB image and is dropped)."""
    fmt, _ = output_format(img.format)
    text = provenance_text(prov)
    icc = img.icc_profile if not img.is_gray else None
    buf = io.BytesIO()
    if fmt == "TIFF":
        import tifffile

        extratags = [(700, "B", len(xmp := xmp_packet(prov)), xmp, True)]
        if icc:
            extratags.append((34675, "B", len(icc), icc, True))
        data = rgb if img.alpha is None else np.concatenate([rgb, img.alpha.astype(rgb.dtype)[..., None]], -1)
        tifffile.imwrite(buf, data, photometric="rgb", description=text, extratags=extratags, compression="zlib", metadata=None)
        return buf.getvalue()
    if fmt == "PNG" and rgb.dtype == np.uint16:
        return _png16(rgb, img.alpha, {"Description": text, "Software": SOFTWARE, "colorize:provenance": json.dumps(prov)})
    pil = Image.fromarray(rgb)
    exif = Image.Exif()
    if img.exif:
        exif.load(img.exif)
    exif[0x010E] = text  # ImageDescription
    exif[0x0131] = SOFTWARE  # Software
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        if img.alpha is not None:
            pil.putalpha(Image.fromarray(img.alpha if img.alpha.dtype == np.uint8 else (img.alpha // 257).astype(np.uint8)))
        info = PngInfo()
        info.add_itxt("Description", text)
        info.add_itxt("Software", SOFTWARE)
        info.add_itxt("colorize:provenance", json.dumps(prov))
        info.add_itxt("XML:com.adobe.xmp", xmp_packet(prov).decode("utf-8"))
        pil.save(buf, "PNG", pnginfo=info, icc_profile=icc, exif=exif.tobytes())
    else:
        pil.save(buf, "JPEG", quality=95, icc_profile=icc, exif=exif.tobytes(), xmp=xmp_packet(prov))
    return buf.getvalue()


def preview(arr: np.ndarray | Image.Image, side: int) -> Image.Image:
    """An 8-bit picture (grey stays grey) of at most `side` pixels a side, for thumbnails and review pages.
    Box filtered: the area mean is what a reduction wants. Reduced first by the largest whole factor
    that keeps `side` (Pillow's `reduce`, a few times faster than its box resize over the whole image;
    the same area mean where the factor is whole), then box-resized the rest of the way."""
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr if arr.dtype == np.uint8 else (arr >> 8).astype(np.uint8))
    img = img.copy() if isinstance(arr, Image.Image) else img
    img.thumbnail((side, side), Image.BOX, reducing_gap=1.0)
    return img


def jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
