"""The per-pixel loops of the full-resolution path, compiled (numba): every pixel of every scan goes
through them, so each pixel is read once and written once, with no temporaries.

In torch the same join was some forty element-wise passes over each strip; fused here it is a
fraction of that (`make bench restore` prints the profile, docs/benchmarks.md the figures). The formulas are those of `color` and `upsample`:

- the chroma field: ab = A L + B (guided) or B (bilinear), A and B interpolated bilinearly from the
  working resolution (`upsample.ChromaField`), and the box means of the guided filter;
- Lab -> linear sRGB with the same constants as `color`; a colour outside sRGB loses chroma, never
  lightness, read from the max-chroma table (`color.gamut_tables`); 8-bit companding is a table
  read, 16-bit is computed exactly.

Compiled once per machine and cached beside the module (numba's `cache=True`), or in a temporary
folder where the module's folder is read-only.
"""

from __future__ import annotations

import math
import os
import tempfile

import numba
import numpy as np
from numba import njit

from . import constants as C


def _can_cache_beside_module() -> bool:
    """What numba checks before caching beside this file: its __pycache__ made and written to."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


if not numba.config.CACHE_DIR and not _can_cache_beside_module():
    # installed read-only (an image, a shared site-packages): numba would refuse to import the module
    # when no user cache is writable either; a per-user temporary folder keeps the compiled loops
    numba.config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"colorize-numba-{os.getuid()}")

# Lab -> linear sRGB in float32 (constants typed so): twice the vector width of float64, and under
# 1e-6 of a linear value, far below a 16-bit code.
_f32 = np.float32
_M = C.RGB_FROM_XYZ * C.D65_WHITE[None, :]  # normalised XYZ -> linear sRGB
M00, M01, M02 = (_f32(v) for v in _M[0])
M10, M11, M12 = (_f32(v) for v in _M[1])
M20, M21, M22 = (_f32(v) for v in _M[2])
OFFSET, INV_SLOPE, SWITCH = _f32(C.LAB_OFFSET), _f32(1.0 / C.LAB_KAPPA_SLOPE), _f32(C.LAB_INV_THRESHOLD)
L_OFF, INV_116, INV_500, INV_200 = _f32(16.0), _f32(1.0 / 116.0), _f32(1.0 / 500.0), _f32(1.0 / 200.0)
ZERO, ONE, HALF, BELOW, ABOVE = _f32(0.0), _f32(1.0), _f32(0.5), _f32(-1e-6), _f32(1.0 + 1e-6)
E_GAMMA, E_SLOPE, E_OFF, E_SWITCH = 1.0 / C.SRGB_GAMMA, C.SRGB_LINEAR_SLOPE, C.SRGB_OFFSET, C.SRGB_ENCODE_THRESHOLD


@njit(inline="always", cache=True)
def _f_inv(t):
    return t * t * t if t > SWITCH else (t - OFFSET) * INV_SLOPE


@njit(inline="always", cache=True)
def _linear(L, a, b):
    fy = (L + L_OFF) * INV_116
    x, y, z = _f_inv(fy + a * INV_500), _f_inv(fy), _f_inv(fy - b * INV_200)
    return M00 * x + M01 * y + M02 * z, M10 * x + M11 * y + M12 * z, M20 * x + M21 * y + M22 * z


# sRGB -> Lab: linear sRGB -> XYZ normalised by the white point, and f(t) of CIE Lab
_X = C.XYZ_FROM_RGB / C.D65_WHITE[:, None]
X00, X01, X02 = (_f32(v) for v in _X[0])
X10, X11, X12 = (_f32(v) for v in _X[1])
X20, X21, X22 = (_f32(v) for v in _X[2])
EPS, KAPPA_SLOPE, THIRD = _f32(C.LAB_EPSILON), _f32(C.LAB_KAPPA_SLOPE), _f32(1.0 / 3.0)
CBRT_TOP, CBRT_STEPS = 1.25, 1024  # the cube-root table's range (normalised XYZ stays below 1.1) and size


def cbrt_table() -> np.ndarray:
    """(CBRT_STEPS + 1,) float32 cube roots on an even grid over [0, CBRT_TOP], for `_lab_f`."""
    return np.cbrt(np.linspace(0.0, CBRT_TOP, CBRT_STEPS + 1)).astype(np.float32)


@njit(inline="always", cache=True)
def _lab_f(t, cbrt):
    """f(t) of CIE Lab. The cube root is a linear read of the table, then one Newton step (relative
    error 1e-4 -> 1e-8): arithmetic the loop vectorises, where a libm cube root per value is a call."""
    u = min(max(t, EPS), _f32(CBRT_TOP)) * _f32(CBRT_STEPS / CBRT_TOP)
    i = min(np.int32(u), np.int32(CBRT_STEPS - 1))
    w = u - _f32(i)
    y = cbrt[i] * (ONE - w) + cbrt[i + 1] * w
    y = (y + y + t / (y * y)) * THIRD
    return y if t > EPS else t * KAPPA_SLOPE + OFFSET


@njit(cache=True, nogil=True, fastmath=True)
def lab_pixels(rgb, lin, cbrt, out):
    """rgb (N, 3) uint8 -> out (N, 3) float32 CIE Lab; `lin` is each 8-bit code's linear value."""
    for k in range(rgb.shape[0]):
        r, g, b = lin[rgb[k, 0]], lin[rgb[k, 1]], lin[rgb[k, 2]]
        fx = _lab_f(X00 * r + X01 * g + X02 * b, cbrt)
        fy = _lab_f(X10 * r + X11 * g + X12 * b, cbrt)
        fz = _lab_f(X20 * r + X21 * g + X22 * b, cbrt)
        out[k, 0] = _f32(116.0) * fy - L_OFF
        out[k, 1] = _f32(500.0) * (fx - fy)
        out[k, 2] = _f32(200.0) * (fy - fz)


@njit(cache=True, nogil=True, fastmath=True)
def l_pixels(rgb, lin, cbrt, out):
    """rgb (N, 3) uint8 -> out (N,) float32 L alone: one cube root a pixel instead of three (a scan
    of a grey photograph stored as RGB, restored)."""
    for k in range(rgb.shape[0]):
        y = X10 * lin[rgb[k, 0]] + X11 * lin[rgb[k, 1]] + X12 * lin[rgb[k, 2]]
        out[k] = _f32(116.0) * _lab_f(y, cbrt) - L_OFF


@njit(cache=True, nogil=True)
def table_read(codes, table, out):
    """codes (N,) integers -> out (N,) = table[codes]: a grey scan's L, read per pixel."""
    for k in range(codes.shape[0]):
        out[k] = table[codes[k]]


@njit(cache=True, nogil=True)
def box_mean(x, r, out):
    """x (C, h, w) -> out (C, h, w): the mean over each (2r + 1)^2 window clipped to the image, by
    running sums: along each row, then down the columns a whole row at a time (vectorised), divided
    by the window's pixel count (what F.avg_pool2d(count_include_pad=False) gives, many times faster)."""
    C, h, w = x.shape
    inv_h, inv_w = np.empty(h), np.empty(w)  # 1 / the window's extent at each row, each column
    for i in range(h):
        inv_h[i] = 1.0 / (min(i + r, h - 1) - max(i - r, 0) + 1)
    for j in range(w):
        inv_w[j] = 1.0 / (min(j + r, w - 1) - max(j - r, 0) + 1)
    sums = np.empty((h, w))  # window sums along each row
    acc = np.empty(w)  # the running sum down the columns
    for c in range(C):
        for i in range(h):
            s = 0.0
            for j in range(min(r, w)):
                s += x[c, i, j]
            for j in range(w):
                if j + r < w:
                    s += x[c, i, j + r]
                if j - r - 1 >= 0:
                    s -= x[c, i, j - r - 1]
                sums[i, j] = s
        acc[:] = 0.0
        for i in range(min(r, h)):
            acc += sums[i]
        for i in range(h):
            if i + r < h:
                acc += sums[i + r]
            if i - r - 1 >= 0:
                acc -= sums[i - r - 1]
            for j in range(w):
                out[c, i, j] = acc[j] * (inv_h[i] * inv_w[j])


@njit(cache=True, nogil=True, fastmath=True)
def field_rows(coeff, y0, y1, wy, x0, x1, wx, guided, L, out):
    """L (rows, W) of a band -> out (2, rows, W): the chroma field's ab. coeff (C, S, S) at working
    resolution; y0, y1, wy the band's row taps (ascending), x0, x1, wx the column taps (W,).

    The working rows the band reads are first widened to full width (the only gathers), then each
    full-resolution row is a blend of two of them, contiguous and vectorised (cheaper than gathering
    per pixel)."""
    C, n, W = coeff.shape[0], L.shape[0], L.shape[1]
    if n == 0:
        return
    lo = y0[0]
    wide = np.empty((C, y1[n - 1] - lo + 1, W), np.float32)  # (C, working rows of the band, W)
    for k in range(wide.shape[1]):
        for c in range(C):
            for j in range(W):
                v = wx[j]
                wide[c, k, j] = coeff[c, lo + k, x0[j]] * (ONE - v) + coeff[c, lo + k, x1[j]] * v
    for i in range(n):
        k0, k1, w = y0[i] - lo, y1[i] - lo, wy[i]
        for j in range(W):
            a = wide[0, k0, j] * (ONE - w) + wide[0, k1, j] * w
            b = wide[1, k0, j] * (ONE - w) + wide[1, k1, j] * w
            if guided:
                a = a * L[i, j] + wide[2, k0, j] * (ONE - w) + wide[2, k1, j] * w
                b = b * L[i, j] + wide[3, k0, j] * (ONE - w) + wide[3, k1, j] * w
            out[0, i, j], out[1, i, j] = a, b


@njit(inline="always", cache=True)
def _diamond(a, b):
    """The diamond angle of (a, b) in [0, 4): monotone in the hue angle, with no arctangent; one
    division and selects, no branch to mispredict."""
    inv = ONE / max(abs(a) + abs(b), _f32(1e-12))
    x, y = a * inv, b * inv
    upper = y if a >= ZERO else ONE - x
    lower = _f32(2.0) - y if a < ZERO else _f32(3.0) + x
    return upper if b >= ZERO else lower


@njit(inline="always", cache=True)
def _encode16(v):
    v = min(max(v, 0.0), 1.0)
    s = (1.0 + E_OFF) * v**E_GAMMA - E_OFF if v > E_SWITCH else v * E_SLOPE
    return int(s * 65535.0 + 0.5)


@njit(cache=True, nogil=True, fastmath=True)
def _cut_chroma(L, a, b, k, table, s0, s1, cell, lin):
    """The k colours (L, a, b: (W,) with the first k used) outside sRGB -> their clipped linear RGB
    in `lin` (3, W), chroma cut to the largest in gamut at their L and hue: a bilinear read of the
    max-chroma table, a hair inside. In passes, so that all but the table reads are vectorised;
    s0, s1 (W,) float32 and cell (W,) int32 are scratch."""
    nl, nh = table.shape[0], table.shape[1] - 1  # the last column repeats hue 0
    flat = table.ravel()
    for t in range(k):  # where in the table
        fl = min(max(L[t], ZERO), _f32(100.0)) * _f32((nl - 1) / 100.0)
        fl = min(fl, _f32(nl - 1.001))
        fh = min(max(_diamond(a[t], b[t]) * _f32(nh / 4.0), ZERO), _f32(nh - 1e-4))
        l0, h0 = np.int32(fl), np.int32(fh)
        s0[t], s1[t], cell[t] = fl - _f32(l0), fh - _f32(h0), l0 * (nh + 1) + h0
    for t in range(k):  # the table's four neighbours (gathers)
        q, tl, th = cell[t], s0[t], s1[t]
        top = flat[q] * (ONE - th) + flat[q + 1] * th
        bot = flat[q + nh + 1] * (ONE - th) + flat[q + nh + 2] * th
        s0[t] = (top * (ONE - tl) + bot * tl) * _f32(0.995)
    for t in range(k):  # the cut and Lab -> linear RGB again
        s = min(s0[t] / max(math.sqrt(a[t] * a[t] + b[t] * b[t]), _f32(1e-6)), ONE)
        r, g, bl = _linear(L[t], a[t] * s, b[t] * s)
        lin[0, t], lin[1, t], lin[2, t] = min(max(r, ZERO), ONE), min(max(g, ZERO), ONE), min(max(bl, ZERO), ONE)


@njit(cache=True, nogil=True, fastmath=True)
def srgb_rows(L, ab, table, lut8, steps, bits16, out):
    """L (rows, W) and ab (2, rows, W) -> out (rows, W, 3) sRGB codes: uint8 through `lut8` (linear
    value x steps -> code), or uint16 computed exactly (bits16). L is kept: a colour outside sRGB
    loses chroma, down to the largest in gamut (`_cut_chroma`).

    Each row goes in passes that are contiguous and branch-free, so the compiler vectorises them:
    Lab -> clipped linear RGB into a (3, W) row, flagging colours outside sRGB; where the row has
    any, those are gathered, cut and put back; then the table reads into the interleaved output.
    Table reads in the first loop, or the gamut step as one scalar loop with a branch per pixel,
    keep the compiler from vectorising (figures: docs/benchmarks.md)."""
    W, st = L.shape[1], _f32(steps)
    lin = np.empty((3, W), np.float32)  # one row of linear RGB, clipped
    outside = np.empty(W, np.int32)  # 1 where the row's colour is outside sRGB
    idx = np.empty(W, np.int32)  # the columns of those colours
    cut = np.empty((3, W), np.float32)  # their linear RGB once cut
    lab = np.empty((5, W), np.float32)  # their L, a, b, and scratch for `_cut_chroma`
    cell = np.empty(W, np.int32)
    for i in range(L.shape[0]):
        n_out = 0
        for j in range(W):
            r, g, b = _linear(L[i, j], ab[0, i, j], ab[1, i, j])
            o = (min(r, g, b) < BELOW) | (max(r, g, b) > ABOVE)
            outside[j] = o
            n_out += o
            lin[0, j], lin[1, j], lin[2, j] = min(max(r, ZERO), ONE), min(max(g, ZERO), ONE), min(max(b, ZERO), ONE)
        if n_out:
            k = 0
            for j in range(W):  # compaction without a branch
                idx[k] = j
                k += outside[j]
            for t in range(k):
                j = idx[t]
                lab[0, t], lab[1, t], lab[2, t] = L[i, j], ab[0, i, j], ab[1, i, j]
            _cut_chroma(lab[0], lab[1], lab[2], k, table, lab[3], lab[4], cell, cut)
            for t in range(k):
                j = idx[t]
                lin[0, j], lin[1, j], lin[2, j] = cut[0, t], cut[1, t], cut[2, t]
        if bits16:
            for j in range(W):
                out[i, j, 0], out[i, j, 1], out[i, j, 2] = _encode16(lin[0, j]), _encode16(lin[1, j]), _encode16(lin[2, j])
        else:
            for j in range(W):
                out[i, j, 0] = lut8[int(lin[0, j] * st + HALF)]
                out[i, j, 1] = lut8[int(lin[1, j] * st + HALF)]
                out[i, j, 2] = lut8[int(lin[2, j] * st + HALF)]
