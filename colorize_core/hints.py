"""Curators' colour hints, in the one format used everywhere (review page export, batch input,
manifests, tests), and their rasterisation at the network's working size.

    {"version": 1, "images": {"<key relative to SOURCE>": [{"x": 0.41, "y": 0.27, "radius": 0.01,
                                                            "color": "#b03a2e"}, ...]}}

x, y are fractions of the width and height (0 = the left/top edge; pixel i's centre is at
(i + 0.5) / size); radius is a fraction of the long side; `color` is the sRGB hex a curator picked
(only its chroma is used: lightness always comes from the photograph) or `ab` the CIE Lab chroma
[a*, b*] a program gives. When both are given, `ab` wins. Anything else is an error that names the
image key and the field, raised before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from .constants import AB_RANGE

HINTS_VERSION = 1
_FIELDS = {"x", "y", "radius", "color", "ab"}
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class HintsError(ValueError):
    """A hints file that cannot be used, naming where (image key, hint number, field) and why."""


@dataclass(frozen=True)
class Hint:
    x: float  # fraction of the width
    y: float  # fraction of the height
    radius: float  # fraction of the long side
    ab: tuple[float, float]  # CIE Lab chroma


def hex_to_ab(color: str) -> tuple[float, float]:
    """The a*, b* of an sRGB hex colour (its lightness is dropped). The colour module (torch, numba) is
    imported here, not with the format: restore's client parses no colour unless it was given hints."""
    from .color import rgb_to_lab

    rgb = np.array([[[int(color[i : i + 2], 16) for i in (1, 3, 5)]]], np.uint8)
    lab = rgb_to_lab(rgb)[0, 0]
    return float(lab[1]), float(lab[2])


def _number(value, where: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HintsError(f"{where}: expected a number, got {value!r}")
    if value < lo or value > hi or (lo_open and value == lo):
        raise HintsError(f"{where}: {value} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return float(value)


def parse_hint(h, where: str) -> Hint:
    if not isinstance(h, dict):
        raise HintsError(f"{where}: expected an object with x, y, radius and color or ab")
    unknown = sorted(set(h) - _FIELDS)
    if unknown:
        raise HintsError(f"{where}: unknown field {unknown[0]!r} (fields: x, y, radius, color, ab)")
    for key in ("x", "y", "radius"):
        if key not in h:
            raise HintsError(f"{where}: missing field {key!r}")
    x = _number(h["x"], f"{where}.x", 0.0, 1.0)
    y = _number(h["y"], f"{where}.y", 0.0, 1.0)
    radius = _number(h["radius"], f"{where}.radius", 0.0, 0.5, lo_open=True)
    if "ab" in h:
        ab = h["ab"]
        if not isinstance(ab, list) or len(ab) != 2:
            raise HintsError(f"{where}.ab: expected [a*, b*], got {ab!r}")
        chroma = (_number(ab[0], f"{where}.ab[0]", -AB_RANGE, AB_RANGE), _number(ab[1], f"{where}.ab[1]", -AB_RANGE, AB_RANGE))
    elif "color" in h:
        if not isinstance(h["color"], str) or not _HEX.match(h["color"]):
            raise HintsError(f"{where}.color: expected an sRGB hex colour such as '#b03a2e', got {h['color']!r}")
        chroma = hex_to_ab(h["color"])
    else:
        raise HintsError(f"{where}: needs a 'color' (sRGB hex) or an 'ab' ([a*, b*])")
    return Hint(x, y, radius, chroma)


def parse_hints(data: bytes | str | dict, name: str = "hints") -> dict[str, tuple[Hint, ...]]:
    """{image key: its hints} of a hints document; HintsError for anything else in it."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HintsError(f"{name}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise HintsError(f"{name}: expected an object with 'version' and 'images'")
    if data.get("version") != HINTS_VERSION:
        raise HintsError(f"{name}: 'version' must be {HINTS_VERSION}, got {data.get('version')!r}")
    unknown = sorted(set(data) - {"version", "images"})
    if unknown:
        raise HintsError(f"{name}: unknown field {unknown[0]!r}")
    images = data.get("images")
    if not isinstance(images, dict):
        raise HintsError(f"{name}: 'images' must map image keys (relative to SOURCE) to lists of hints")
    out = {}
    for key, hints in images.items():
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise HintsError(f"{name}: image key {key!r} must be a path relative to SOURCE")
        if not isinstance(hints, list):
            raise HintsError(f"{name}: images[{key!r}]: expected a list of hints")
        out[key] = tuple(parse_hint(h, f"{name}: images[{key!r}][{i}]") for i, h in enumerate(hints))
    return out


def hints_document(hints: dict[str, tuple[Hint, ...]]) -> dict:
    """The document of `hints`, chroma as `ab` (what a program writes; `parse_hints` reads it back)."""
    return {
        "version": HINTS_VERSION,
        "images": {k: [{"x": h.x, "y": h.y, "radius": h.radius, "ab": [round(h.ab[0], 3), round(h.ab[1], 3)]} for h in v] for k, v in hints.items()},
    }


def hints_id(hints: tuple[Hint, ...]) -> str:
    """What identifies one image's hints in its output's name and record (12 hex of a SHA-256 of
    their canonical form: the same points and colours give the same id, in any order)."""
    canon = sorted((round(h.x, 6), round(h.y, 6), round(h.radius, 6), round(h.ab[0], 3), round(h.ab[1], 3)) for h in hints)
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()[:12]


def hints_settings(hints: tuple[Hint, ...]) -> dict:
    """What an output made with hints says of them in its provenance (nothing when made without)."""
    return {"hints": len(hints), "hints_id": hints_id(hints)} if hints else {}


def rasterise(hints: tuple[Hint, ...], grid: tuple[int, int], image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(ab (2, gh, gw) float32, mask (gh, gw) bool) of `hints` on a grid of (gh, gw) cells that spans
    an image of `image_size` (H, W) (the network's working size, aspect ignored): each hint a disc of
    its radius in the image, at least the grid cell under its centre. A later hint wins where two overlap."""
    gh, gw = grid
    H, W = image_size
    ab = np.zeros((2, gh, gw), np.float32)
    mask = np.zeros((gh, gw), bool)
    yy = (np.arange(gh) + 0.5) / gh  # (gh,) cell centres as fractions
    xx = (np.arange(gw) + 0.5) / gw
    for h in hints:
        r = h.radius * max(H, W)  # pixels of the image
        disc = ((yy[:, None] - h.y) * H) ** 2 + ((xx[None, :] - h.x) * W) ** 2 <= r * r  # (gh, gw)
        disc[min(int(h.y * gh), gh - 1), min(int(h.x * gw), gw - 1)] = True
        ab[:, disc] = np.array(h.ab, np.float32)[:, None]
        mask |= disc
    return ab, mask
