import hashlib

import numpy as np
import pytest

from colorize_core.bins import BinConfig, BinSet, canonical_bins, grid_bins_from_histogram, kmeans_bins
from colorize_core.color import rgb_to_lab
from colorize_core.rebalance import ABHistogram
from tests.conftest import REFERENCE, REFERENCE_SHA256


def test_canonical_bins_are_the_reference_file():
    for name, digest in REFERENCE_SHA256.items():  # the files of the reference release, unaltered
        assert hashlib.sha256((REFERENCE / name).read_bytes()).hexdigest() == digest
    bins = canonical_bins()
    assert bins.q == 313
    np.testing.assert_array_equal(bins.centres, np.load(REFERENCE / "pts_in_hull.npy"))
    np.testing.assert_array_equal(bins.prior, np.load(REFERENCE / "prior_probs.npy"))


def test_save_load_round_trip_without_pickle(tmp_path):
    bins = canonical_bins()
    path = tmp_path / "bins.npz"
    bins.save(str(path))
    back = BinSet.load(str(path))
    assert back.checksum == bins.checksum
    np.testing.assert_array_equal(back.weights, bins.weights)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert set(z.files) >= {"header", "centres", "prior", "weights"}


def test_corrupt_bin_set_is_refused(tmp_path):
    bins = canonical_bins()
    other = bins.with_(params=dict(bins.params, edited=True))
    data = bins.to_bytes()
    # swap the arrays of one with the header of another: checksum must catch it
    import io

    with np.load(io.BytesIO(other.to_bytes())) as z:
        arrays = {k: z[k] for k in z.files}
    with np.load(io.BytesIO(data)) as z:
        arrays["header"] = z["header"]
    arrays["weights"] = arrays["weights"] * 2
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        BinSet.from_bytes(buf.getvalue())


def test_grid_bins_from_all_srgb_colours_cover_the_canonical_gamut():
    levels = np.arange(0, 256, 3, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    hist = ABHistogram().add(rgb_to_lab(rgb)[:, 1:])
    bins = grid_bins_from_histogram(hist.counts, BinConfig(grid_size=10))
    canon = {tuple(c) for c in canonical_bins().centres.astype(int)}
    ours = {tuple(c) for c in bins.centres.astype(int)}
    assert len(canon & ours) >= 300  # sRGB reaches nearly every canonical point (309 at full sampling)
    assert len(ours - canon) <= 2
    assert np.all(bins.centres % 10 == 0)


def test_grid_size_is_configurable():
    hist = ABHistogram().add(np.array([[1.0, 1.0]]))
    bins = grid_bins_from_histogram(hist.counts, BinConfig(grid_size=20))
    # the four corners of the occupied cell [0, 20) x [0, 20)
    assert sorted(map(tuple, bins.centres.tolist())) == [(0.0, 0.0), (0.0, 20.0), (20.0, 0.0), (20.0, 20.0)]


def test_kmeans_bins_are_deterministic(rng):
    ab = rng.normal(0, 30, (5000, 2))
    a = kmeans_bins(ab, BinConfig(method="kmeans", k=16, seed=3))
    b = kmeans_bins(ab, BinConfig(method="kmeans", k=16, seed=3))
    assert a.q == 16
    np.testing.assert_array_equal(a.centres, b.centres)
    assert a.checksum == b.checksum
