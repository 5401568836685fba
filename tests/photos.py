"""Real photographs shipped inside installed wheels (scikit-learn, scikit-image, matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def real_photo_bytes() -> dict[str, bytes]:
    import matplotlib
    import skimage
    import sklearn

    out: dict[str, bytes] = {}
    sk_images = Path(sklearn.__file__).parent / "datasets" / "images"
    for name in ("china.jpg", "flower.jpg"):
        out[name] = (sk_images / name).read_bytes()
    ski = Path(skimage.__file__).parent / "data"
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"):
        p = ski / name
        if p.exists():
            out[name] = p.read_bytes()
    out["grace_hopper.jpg"] = (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").read_bytes()
    return out


def real_photos() -> dict[str, np.ndarray]:
    return {k: np.asarray(Image.open(io.BytesIO(v)).convert("RGB")) for k, v in real_photo_bytes().items()}
