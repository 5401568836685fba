"""The bad-input corpus shared by the reader, preprocessing and restoration tests."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming huge dimensions, with no pixel data (a bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_bytes(size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bad_inputs() -> dict[str, bytes]:
    """name -> bytes that no reader should accept."""
    good = jpeg_bytes((256, 256))
    return {
        "empty.jpg": b"",
        "text.jpg": b"this is not an image, only text with a .jpg name\n",
        "truncated.jpg": good[: len(good) // 2],
        "huge.png": _png_header_only(100_000, 100_000),
    }
