"""sRGB (D65) <-> CIE Lab, vectorised in torch, with numpy entry points.

Torch is used for numpy inputs too: its element-wise kernels are SIMD and multi-threaded, which is
what makes conversion of multi-megapixel scans cheap; 8-bit RGB -> Lab, the common case (every
training photo, every colour scan restored), is a compiled loop (`kernels.lab_pixels`), 3x faster
on one thread. Channels are last: (..., 3).
"""

from __future__ import annotations

import numpy as np
import torch

from . import constants as C
from .kernels import cbrt_table, l_pixels, lab_pixels, table_read

_XYZ_FROM_RGB = torch.tensor(C.XYZ_FROM_RGB / C.D65_WHITE[:, None], dtype=torch.float32)
_RGB_FROM_XYZ = torch.tensor(C.RGB_FROM_XYZ * C.D65_WHITE[None, :], dtype=torch.float32)


def _srgb_lut() -> torch.Tensor:
    """Linear value of each 8-bit sRGB code, exact in float64 then rounded once."""
    v = np.arange(256, dtype=np.float64) / 255.0
    lin = np.where(
        v > C.SRGB_DECODE_THRESHOLD,
        ((v + C.SRGB_OFFSET) / (1 + C.SRGB_OFFSET)) ** C.SRGB_GAMMA,
        v / C.SRGB_LINEAR_SLOPE,
    )
    return torch.tensor(lin, dtype=torch.float32)


_SRGB_U8_TO_LINEAR = _srgb_lut()
_U8_LINEAR, _CBRT = _SRGB_U8_TO_LINEAR.float().numpy(), cbrt_table()  # the compiled loop's tables


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    if rgb.dtype == torch.uint8:
        return _SRGB_U8_TO_LINEAR[rgb.long()]
    rgb = rgb.float()
    hi = ((rgb + C.SRGB_OFFSET) / (1 + C.SRGB_OFFSET)).clamp_min(0).pow(C.SRGB_GAMMA)
    return torch.where(rgb > C.SRGB_DECODE_THRESHOLD, hi, rgb / C.SRGB_LINEAR_SLOPE)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    hi = (1 + C.SRGB_OFFSET) * lin.clamp_min(C.SRGB_ENCODE_THRESHOLD).pow(1 / C.SRGB_GAMMA) - C.SRGB_OFFSET
    return torch.where(lin > C.SRGB_ENCODE_THRESHOLD, hi, lin * C.SRGB_LINEAR_SLOPE)


def _lab_f_(t: torch.Tensor) -> torch.Tensor:
    """f(t) of CIE Lab; consumes t (in place) to keep the work in cache."""
    lin = t * C.LAB_KAPPA_SLOPE + C.LAB_OFFSET
    mask = t > C.LAB_EPSILON
    t.clamp_(min=0).pow_(1.0 / 3.0)
    return torch.where(mask, t, lin)


def _lab_f_inv_(f: torch.Tensor) -> torch.Tensor:
    lin = (f - C.LAB_OFFSET) / C.LAB_KAPPA_SLOPE
    mask = f > C.LAB_INV_THRESHOLD
    f.pow_(3)
    return torch.where(mask, f, lin)


# Pixels per block: each block's temporaries stay in the CPU cache, which is 2-3x faster than
# streaming every step over a multi-megapixel image.
_BLOCK = 1 << 17


def rgb_to_lab_torch(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) sRGB, uint8 or float in [0, 1] -> (..., 3) float32 Lab (not differentiable)."""
    flat = rgb.reshape(-1, 3)
    out = torch.empty(flat.shape, dtype=torch.float32)
    m = _XYZ_FROM_RGB.T.contiguous()
    for s in range(0, flat.shape[0], _BLOCK):
        f = _lab_f_(srgb_to_linear(flat[s : s + _BLOCK]) @ m)  # (n, 3) f(X/Xn), f(Y/Yn), f(Z/Zn)
        o = out[s : s + _BLOCK]
        torch.mul(f[:, 1], 116.0, out=o[:, 0]).sub_(16.0)
        torch.sub(f[:, 0], f[:, 1], out=o[:, 1]).mul_(500.0)
        torch.sub(f[:, 1], f[:, 2], out=o[:, 2]).mul_(200.0)
    return out.reshape(rgb.shape)


def lab_to_rgb_torch(lab: torch.Tensor) -> torch.Tensor:
    """(..., 3) Lab -> (..., 3) float32 sRGB in [0, 1], out-of-gamut colours clipped (not differentiable)."""
    flat = lab.reshape(-1, 3).float()
    out = torch.empty(flat.shape, dtype=torch.float32)
    m = _RGB_FROM_XYZ.T.contiguous()
    for s in range(0, flat.shape[0], _BLOCK):
        blk = flat[s : s + _BLOCK]
        f = torch.empty_like(blk)
        torch.add(blk[:, 0], 16.0, out=f[:, 1]).div_(116.0)
        torch.add(f[:, 1], blk[:, 1], alpha=1 / 500.0, out=f[:, 0])
        torch.sub(f[:, 1], blk[:, 2], alpha=1 / 200.0, out=f[:, 2]).clamp_(min=0)  # as skimage: Z >= 0
        out[s : s + _BLOCK] = linear_to_srgb(_lab_f_inv_(f) @ m).clamp_(0.0, 1.0)
    return out.reshape(lab.shape)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 or float [0, 1] sRGB -> (..., 3) float32 Lab."""
    if rgb.dtype == np.uint8:
        out = np.empty(rgb.shape, np.float32)
        lab_pixels(np.ascontiguousarray(rgb).reshape(-1, 3), _U8_LINEAR, _CBRT, out.reshape(-1, 3))
        return out
    return rgb_to_lab_torch(torch.from_numpy(np.require(rgb, requirements=["C", "W"]))).numpy()


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 or float [0, 1] sRGB -> (...) float32 L: `rgb_to_lab(rgb)[..., 0]`, for 8 bits
    with a third of the work."""
    if rgb.dtype != np.uint8:
        return rgb_to_lab(rgb)[..., 0]
    out = np.empty(rgb.shape[:-1], np.float32)
    l_pixels(np.ascontiguousarray(rgb).reshape(-1, 3), _U8_LINEAR, _CBRT, out.reshape(-1))
    return out


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) Lab -> (..., 3) float32 sRGB in [0, 1]."""
    return lab_to_rgb_torch(torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32))).numpy()


def gray_to_l(gray: np.ndarray) -> np.ndarray:
    """Grayscale (..., ) uint8/uint16/float [0, 1] -> L in [0, 100], float32.

    A gray pixel is sRGB with R = G = B, so L depends on it alone: a 1-D path that avoids building
    an RGB image for a 100-megapixel scan.
    """
    if gray.dtype in (np.uint8, np.uint16):  # one table read a pixel (256 or 65536 entries), compiled: 4x numpy's indexing
        flat = np.ascontiguousarray(gray).reshape(-1)
        out = np.empty(flat.shape, np.float32)
        table_read(flat, _gray_l_table(gray.dtype), out)
        return out.reshape(gray.shape)
    t = torch.from_numpy(np.require(gray, requirements=["C", "W"]))
    scale = 65535.0 if t.dtype == torch.int32 else 1.0
    return (116.0 * _lab_f_(srgb_to_linear(t.float() / scale)) - 16.0).numpy()


_GRAY_L: dict = {}


def _gray_l_table(dtype) -> np.ndarray:
    """L of every grey code of an 8- or 16-bit image, computed once exactly."""
    if dtype not in _GRAY_L:
        codes = 256 if dtype == np.uint8 else 65536
        lin = srgb_to_linear(torch.arange(codes, dtype=torch.float64) / (codes - 1))
        _GRAY_L[dtype] = (116.0 * _lab_f_(lin) - 16.0).float().numpy()
    return _GRAY_L[dtype]


def l_to_gray(L: np.ndarray) -> np.ndarray:
    """Inverse of `gray_to_l`: L in [0, 100] -> sRGB gray in [0, 1], float32."""
    t = torch.from_numpy(np.ascontiguousarray(L, dtype=np.float32))
    return linear_to_srgb(_lab_f_inv_((t + 16.0) / 116.0)).clamp_(0, 1).numpy()


# ---------------------------------------------------------------- the tables of the full-resolution join (kernels.py)

_GAMUT_L, _GAMUT_H = 101, 360  # the max-chroma table: L every 1, 360 hue directions


def _f_inv_into(t: torch.Tensor) -> torch.Tensor:
    """The inverse CIE Lab companding, in place: t^3 above the switch point, linear below."""
    lin = (t - C.LAB_OFFSET) / C.LAB_KAPPA_SLOPE
    return torch.where(t > C.LAB_INV_THRESHOLD, t * t * t, lin, out=t)


_RGB_ROWS = [[float(v) for v in row] for row in _RGB_FROM_XYZ]


def _linear_rgb(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n,) L, a, b -> (n, 3) linear sRGB, unclipped (the max-chroma table's bisection)."""
    fy = (L + 16.0) / 116.0
    x, y, z = _f_inv_into(fy + a / 500.0), _f_inv_into(fy.clone()), _f_inv_into(fy - b / 200.0)  # normalised X, Y, Z
    out = torch.empty(L.shape[0], 3)
    for i, (mx, my, mz) in enumerate(_RGB_ROWS):
        torch.mul(x, mx, out=out[:, i]).add_(y, alpha=my).add_(z, alpha=mz)
    return out


def diamond_direction(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit (a, b) directions at "diamond angles" p in [0, 4): a monotone stand-in for the hue angle
    that a pixel's (a, b) gives with one division and no arctangent (`kernels._diamond`)."""
    q, f = p.floor(), p - p.floor()
    a = torch.where(q == 0, 1 - f, torch.where(q == 1, -f, torch.where(q == 2, f - 1, f)))
    b = torch.where(q == 0, f, torch.where(q == 1, 1 - f, torch.where(q == 2, -f, f - 1)))
    n = torch.hypot(a, b)
    return a / n, b / n


def _max_chroma_table() -> torch.Tensor:
    """(L, hue + 1) largest chroma in sRGB gamut for each L and diamond angle, by bisection, once."""
    L = torch.linspace(0, 100, _GAMUT_L)[:, None].expand(_GAMUT_L, _GAMUT_H).reshape(-1)
    p = (torch.arange(_GAMUT_H, dtype=torch.float64) * (4.0 / _GAMUT_H))[None, :].expand(_GAMUT_L, _GAMUT_H).reshape(-1)
    cos, sin = (d.float() for d in diamond_direction(p))
    lo, hi = torch.zeros_like(L), torch.full_like(L, 200.0)
    for _ in range(24):  # 200 / 2^24: exact to float precision
        mid = (lo + hi) / 2
        rgb = _linear_rgb(L, mid * cos, mid * sin)
        ok = ((rgb >= 0) & (rgb <= 1)).all(-1)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    table = lo.reshape(_GAMUT_L, _GAMUT_H).float()
    return torch.cat([table, table[:, :1]], 1)  # (L, H + 1): the last column wraps to p = 0


_TABLES: tuple[np.ndarray, np.ndarray, int] | None = None
_LUT_STEPS = 1 << 16  # linear values are rounded to 1/65536 for the 8-bit table: under 0.03 of a code


def gamut_tables() -> tuple[np.ndarray, np.ndarray, int]:
    """(max-chroma table (L, hue + 1), linear -> 8-bit sRGB table, its steps): what the full-resolution
    join (`kernels.srgb_rows`) reads instead of bisecting or companding per pixel. Built once."""
    global _TABLES
    if _TABLES is None:
        lin = torch.arange(_LUT_STEPS + 1, dtype=torch.float64) / _LUT_STEPS
        lut8 = (linear_to_srgb(lin) * 255).round().to(torch.uint8).numpy()
        _TABLES = (_max_chroma_table().numpy(), lut8, _LUT_STEPS)
    return _TABLES
