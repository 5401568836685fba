"""Core benchmarks: Lab conversion vs scikit-image, soft-encoding vs the reference's NearestNeighbors."""

from __future__ import annotations

import numpy as np
import torch
from skimage import color as skcolor
from sklearn.neighbors import NearestNeighbors

from bench.timing import best_of, report
from colorize_core.bins import canonical_bins
from colorize_core.color import lab_to_rgb, rgb_to_lab
from colorize_core.encoding import SoftEncoder


def bench_lab() -> bool:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)  # 4 megapixels, as decoded photos are
    t_ours, lab = best_of(lambda: rgb_to_lab(rgb))
    t_sk, lab_sk = best_of(lambda: skcolor.rgb2lab(rgb), 2)
    err = float(np.abs(lab - lab_sk).max())
    ok = report(f"rgb->Lab 4 MP (max diff {err:.1e})", t_ours, t_sk, "skimage.rgb2lab", 5) and err < 1e-3
    t_ours, rgb_back = best_of(lambda: lab_to_rgb(lab))
    t_sk, rgb_sk = best_of(lambda: skcolor.lab2rgb(lab_sk), 2)
    err = float(np.abs(rgb_back - rgb_sk).max())
    report(f"Lab->rgb 4 MP (max diff {err:.1e})", t_ours, t_sk, "skimage.lab2rgb")
    return ok


def reference_soft_encode(ab: np.ndarray, centres: np.ndarray, k: int = 5, sigma: float = 5.0):
    """The reference implementation's NNEncode: NearestNeighbors(k) then Gaussian weights."""
    nn = NearestNeighbors(n_neighbors=k, algorithm="ball_tree").fit(centres)
    dist, idx = nn.kneighbors(ab)
    w = np.exp(-(dist**2) / (2 * sigma**2))
    return idx, w / w.sum(1, keepdims=True)


def _same_up_to_ties(idx, w, ridx, rw, centres, ab) -> tuple[float, float]:
    """Bins at equal distance are interchangeable: compare the sorted distances and the weights."""
    d = np.linalg.norm(centres[idx] - ab[:, None], axis=-1)
    rd = np.linalg.norm(centres[ridx] - ab[:, None], axis=-1)
    return float(np.abs(np.sort(d, 1) - np.sort(rd, 1)).max()), float(np.abs(np.sort(w, 1) - np.sort(rw, 1)).max())


def bench_soft_encoding() -> bool:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (64, 256, 256, 3), dtype=np.uint8)
    ab_float = rgb_to_lab(rgb)[..., 1:].reshape(-1, 2)  # 4.2 M pixels
    ab_int = np.round(ab_float).astype(np.int8)  # what the Lab shards store
    bins = canonical_bins()
    enc = SoftEncoder(bins)
    enc.encode(torch.zeros(1, 2, dtype=torch.int8))  # builds the lookup table once, as training does
    ok = True
    for label, ab, target in (("int8 ab, as in shards", ab_int, 20), ("float ab", ab_float, None)):
        t_ours, (idx, w) = best_of(lambda: enc.encode(torch.from_numpy(ab)))
        t_ref, (ridx, rw) = best_of(lambda: reference_soft_encode(ab.astype(np.float32), bins.centres), 1)
        dd, dw = _same_up_to_ties(idx.numpy(), w.numpy(), ridx, rw, bins.centres, ab.astype(np.float32))
        name = f"soft-encode 64 x 256^2, {label} (max diff: distances {dd:.1e}, weights {dw:.1e})"
        ok &= report(name, t_ours, t_ref, "NearestNeighbors(5)+Gaussian", target) and dd < 1e-3 and dw < 1e-4
    return ok


def main() -> bool:
    print(f"torch threads: {torch.get_num_threads()}")
    return all([bench_lab(), bench_soft_encoding()])
