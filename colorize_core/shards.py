"""Lab shards: the training data format (Parquet, one row per image).

Schema version 1, one row per source image:

| column        | type    | meaning                                                        |
| ------------- | ------- | -------------------------------------------------------------- |
| id            | string  | sha256 of the source bytes (the image's identity)              |
| source        | string  | URI the bytes were read from                                   |
| split         | string  | "train" or "val", a deterministic function of `id`             |
| height, width | int32   | stored size (the training size)                                |
| orig_height, orig_width | int32 | size of the decoded source                             |
| L             | binary  | (H, W) uint8, L * 255 / 100 rounded (L in [0, 100])            |
| ab            | binary  | (H, W, 2) int8, a and b rounded to integers, clipped to int8  |

The file metadata holds `colorize.schema_version` and a JSON description of this encoding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from .color import rgb_to_lab
from .constants import L_STORE_SCALE
from .imageio import ReaderConfig, decode_image

SCHEMA_VERSION = "1"
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("orig_height", pa.int32()),
        ("orig_width", pa.int32()),
        ("L", pa.binary()),
        ("ab", pa.binary()),
    ],
    metadata={
        "colorize.schema_version": SCHEMA_VERSION,
        "colorize.encoding": json.dumps(
            {"L": "uint8 (H, W), L * 255 / 100", "ab": "int8 (H, W, 2), rounded", "id": "sha256 of source bytes"}
        ),
    },
)


@dataclass(frozen=True)
class PreprocessConfig:
    size: int = 256  # training size: short side resized to this, then centre-cropped square
    val_fraction: float = 0.1  # share of images (by content hash) held out for validation
    reader: ReaderConfig = ReaderConfig()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_of(content_id: str, val_fraction: float) -> str:
    """Deterministic split from the hash: the same image lands in the same split on every run."""
    return "val" if int(content_id[:8], 16) / 2**32 < val_fraction else "train"


def resize_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3): short side to `size` (Lanczos), centred square crop.

    Only the crop is resampled (Pillow's `box`, the same scale and filter taps as resizing the whole
    image and cropping): a 3:2 photo costs two thirds of the work."""
    h, w = rgb.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    top, left = (nh - size) // 2, (nw - size) // 2
    sy, sx = h / nh, w / nw  # source pixels per resized pixel
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.LANCZOS, box=box))


def encode_lab(lab: np.ndarray) -> tuple[bytes, bytes]:
    """(H, W, 3) float Lab -> compact (L bytes, ab bytes)."""
    L = np.clip(np.round(lab[..., 0] * L_STORE_SCALE), 0, 255).astype(np.uint8)
    ab = np.clip(np.round(lab[..., 1:]), -128, 127).astype(np.int8)
    return L.tobytes(), ab.tobytes()


def decode_lab(L: bytes, ab: bytes, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Shard bytes -> L (H, W) float32 in [0, 100] and ab (H, W, 2) int8."""
    l_arr = np.frombuffer(L, np.uint8).reshape(height, width).astype(np.float32) / L_STORE_SCALE
    return l_arr, np.frombuffer(ab, np.int8).reshape(height, width, 2)


def make_row(data: bytes, source: str, cfg: PreprocessConfig, content_id: str | None = None, split: str | None = None) -> dict:
    """Source bytes -> one shard row; raises ImageReadError for bad input.

    `split` overrides the hash-based split (a curated corpus that splits by subject)."""
    img = decode_image(data, source, cfg.reader, at_least=cfg.size)
    rgb = resize_crop(img.rgb8(), cfg.size)
    L, ab = encode_lab(rgb_to_lab(rgb))
    cid = content_id or content_hash(data)
    return {
        "id": cid,
        "source": source,
        "split": split or split_of(cid, cfg.val_fraction),
        "height": cfg.size,
        "width": cfg.size,
        "orig_height": (img.source_size or img.size)[0],
        "orig_width": (img.source_size or img.size)[1],
        "L": L,
        "ab": ab,
    }


def rows_to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def check_schema(schema: pa.Schema, where: str) -> None:
    meta = schema.metadata or {}
    version = meta.get(b"colorize.schema_version", b"?").decode()
    if version != SCHEMA_VERSION:
        raise ValueError(f"{where}: shard schema version {version}, this code reads {SCHEMA_VERSION}")
