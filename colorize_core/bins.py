"""Bin sets: the quantised ab plane, with their prior, rebalancing weights and provenance.

A bin set is data, not code: saved as an `.npz` of plain arrays plus a JSON header (loaded with
`allow_pickle=False`) and identified by a checksum over its contents.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from importlib import resources

import numpy as np

from .constants import AB_RANGE
from .rebalance import RebalanceConfig, rebalancing_weights

FORMAT_VERSION = 1


@dataclass(frozen=True)
class BinConfig:
    method: str = "canonical"  # canonical | grid | kmeans
    grid_size: int = 10  # ab cell size of the grid bins
    min_count: int = 1  # a grid cell counts as in gamut from this many pixels
    k: int = 313  # K-Means clusters
    seed: int = 0
    sample_size: int = 200_000  # ab samples given to K-Means


@dataclass(frozen=True)
class BinSet:
    centres: np.ndarray  # (Q, 2) float32 ab
    kind: str
    prior: np.ndarray | None = None  # (Q,) empirical, sums to 1
    smoothed_prior: np.ndarray | None = None  # (Q,) sums to 1
    weights: np.ndarray | None = None  # (Q,) rebalancing, prior-weighted mean 1
    params: dict = field(default_factory=dict)  # how it was made (config, provenance)

    @property
    def q(self) -> int:
        return int(self.centres.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"centres": np.asarray(self.centres, np.float32)}
        for name in ("prior", "smoothed_prior", "weights"):
            v = getattr(self, name)
            if v is not None:
                out[name] = np.asarray(v, np.float64)
        return out

    @property
    def checksum(self) -> str:
        h = hashlib.sha256()
        for name, arr in sorted(self.arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps({"kind": self.kind, "params": self.params}, sort_keys=True).encode())
        return h.hexdigest()

    def with_(self, **changes) -> "BinSet":
        return replace(self, **changes)

    def to_bytes(self) -> bytes:
        header = {"format_version": FORMAT_VERSION, "kind": self.kind, "params": self.params, "checksum": self.checksum}
        buf = io.BytesIO()
        np.savez(buf, header=np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8), **self.arrays())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "BinSet":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            if header.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"unsupported bin-set format {header.get('format_version')}")
            arrays = {k: z[k] for k in z.files if k != "header"}
        bins = cls(
            centres=arrays["centres"].astype(np.float32),
            kind=header["kind"],
            prior=arrays.get("prior"),
            smoothed_prior=arrays.get("smoothed_prior"),
            weights=arrays.get("weights"),
            params=header["params"],
        )
        if bins.checksum != header["checksum"]:
            raise ValueError("bin-set checksum mismatch: the file is corrupt or was edited")
        return bins

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def load(cls, path: str) -> "BinSet":
        with open(path, "rb") as f:
            return cls.from_bytes(f.read())


def _package_array(name: str) -> np.ndarray:
    with resources.files("colorize_core.reference").joinpath(name).open("rb") as f:
        return np.load(f, allow_pickle=False)


def canonical_bins(with_reference_prior: bool = True) -> BinSet:
    """The 313 in-gamut grid-10 bins of the reference release, optionally with its ImageNet prior."""
    centres = _package_array("pts_in_hull.npy").astype(np.float32)
    if not with_reference_prior:
        return BinSet(centres=centres, kind="canonical", params={"source": "pts_in_hull.npy"})
    prior = _package_array("prior_probs.npy").astype(np.float64)
    cfg = RebalanceConfig()
    return BinSet(
        centres=centres,
        kind="canonical",
        prior=prior,
        smoothed_prior=prior,  # the release's prior is already the smoothed ImageNet estimate
        weights=rebalancing_weights(prior, cfg.lam),
        params={"source": "pts_in_hull.npy", "prior_source": "prior_probs.npy (ImageNet)", "lam": cfg.lam},
    )


def grid_bins_from_histogram(hist: np.ndarray, cfg: BinConfig = BinConfig()) -> BinSet:
    """In-gamut grid points of observed data, by the reference release's convention.

    `hist` is the fine (2 * AB_RANGE, 2 * AB_RANGE) count grid of `ABHistogram`. Grid points lie on
    multiples of `grid_size`; a point is kept when a cell it is a corner of holds at least
    `min_count` pixels, so every observed value has its four surrounding points as bins. Over all
    sRGB colours this gives 309 of the canonical 313 points and no other.
    """
    g = cfg.grid_size
    ab = np.arange(-AB_RANGE, AB_RANGE) + 0.5  # fine cell centres
    cell = np.floor(ab / g).astype(np.int64)  # coarse cell of each fine row / column
    lo = cell.min()
    n = cell.max() - lo + 1
    coarse = np.zeros((n, n), np.int64)
    np.add.at(coarse, (cell[:, None] - lo, cell[None, :] - lo), hist)  # (n, n)
    corners = np.zeros((n + 1, n + 1), np.int64)
    for da in (0, 1):
        for db in (0, 1):
            corners[da : da + n, db : db + n] += coarse
    ia, ib = np.nonzero(corners >= cfg.min_count)
    centres = np.stack([(ia + lo) * g, (ib + lo) * g], axis=1).astype(np.float32)
    return BinSet(centres=centres, kind="grid", params={"grid_size": g, "min_count": cfg.min_count})


def kmeans_bins(ab_samples: np.ndarray, cfg: BinConfig = BinConfig()) -> BinSet:
    """K-Means centres over sampled ab values (N, 2); seeded, so the same sample gives the same bins."""
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=cfg.k, random_state=cfg.seed, n_init=3, batch_size=4096)
    km.fit(np.asarray(ab_samples, np.float32))
    centres = km.cluster_centers_.astype(np.float32)
    order = np.lexsort((centres[:, 1], centres[:, 0]))  # a stable order: by a, then b
    return BinSet(centres=centres[order], kind="kmeans", params={"k": cfg.k, "seed": cfg.seed, "samples": int(len(ab_samples))})
