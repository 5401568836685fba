"""Before/after sheet of the validation photos for the README: grey | colorized | original.

Usage: python scripts/validation_sheet.py PACKAGE_DIR SHARDS OUT.jpg
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from colorize_core.color import lab_to_rgb
from colorize_core.colorize import chroma_at_working_size
from colorize_core.data import open_local, read_rows
from colorize_core.inference import predict
from colorize_core.package import load_package
from colorize_core.settings import ColorizeConfig

CELL = 160


def main(package: str, shards: str, out: str, columns: int = 2) -> None:
    pkg = load_package(package)
    tiles = []
    for url in sorted(glob.glob(str(Path(shards) / "*.parquet"))):
        for L, ab in read_rows(url, open_local, "val"):
            L_in = torch.from_numpy(L)[None, None]
            pred = chroma_at_working_size(pkg, L_in, predict(pkg.model, L_in), ColorizeConfig())[0].permute(1, 2, 0).numpy()
            row = [np.zeros_like(ab, np.float32), pred, ab.astype(np.float32)]
            imgs = [
                Image.fromarray((lab_to_rgb(np.concatenate([L[..., None], a], -1)) * 255).round().astype(np.uint8)).resize((CELL, CELL))
                for a in row
            ]
            tiles.append(imgs)
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (3 * CELL + 12), rows * CELL + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for c in range(columns):
        for j, label in enumerate(("grey input", "colorized", "original")):
            draw.text((c * (3 * CELL + 12) + j * CELL + 4, 4), label, fill="black")
    for i, imgs in enumerate(tiles):
        x, y = (i % columns) * (3 * CELL + 12), 20 + (i // columns) * CELL
        for j, img in enumerate(imgs):
            sheet.paste(img, (x + j * CELL, y))
    sheet.save(out, quality=85)
    print(f"{out}: {len(tiles)} validation photos")


if __name__ == "__main__":
    main(*sys.argv[1:4])
