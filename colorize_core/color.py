"""sRGB (D65) <-> CIE Lab, vectorised in torch, with numpy entry points.

Torch is used for numpy inputs too: its element-wise kernels are SIMD and multi-threaded, which is
what makes conversion of multi-megapixel scans cheap. Channels are last: (..., 3).
"""

from __future__ import annotations

import numpy as np
import torch

from . import constants as C

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
    return rgb_to_lab_torch(torch.from_numpy(np.require(rgb, requirements=["C", "W"]))).numpy()


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) Lab -> (..., 3) float32 sRGB in [0, 1]."""
    return lab_to_rgb_torch(torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32))).numpy()


def gray_to_l(gray: np.ndarray) -> np.ndarray:
    """Grayscale (..., ) uint8/uint16/float [0, 1] -> L in [0, 100], float32.

    A gray pixel is sRGB with R = G = B, so L depends on it alone: a 1-D path that avoids building
    an RGB image for a 100-megapixel scan.
    """
    t = torch.from_numpy(np.require(gray, requirements=["C", "W"]))
    if t.dtype == torch.uint8:
        lin = _SRGB_U8_TO_LINEAR[t.long()]
    else:
        scale = 65535.0 if t.dtype in (torch.uint16, torch.int32) else 1.0
        lin = srgb_to_linear(t.float() / scale)
    return (116.0 * _lab_f_(lin) - 16.0).numpy()


def l_to_gray(L: np.ndarray) -> np.ndarray:
    """Inverse of `gray_to_l`: L in [0, 100] -> sRGB gray in [0, 1], float32."""
    t = torch.from_numpy(np.ascontiguousarray(L, dtype=np.float32))
    return linear_to_srgb(_lab_f_inv_((t + 16.0) / 116.0)).clamp_(0, 1).numpy()
