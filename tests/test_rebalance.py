import numpy as np

from colorize_core.bins import canonical_bins
from colorize_core.rebalance import ABHistogram, RebalanceConfig, empirical_prior, fit_prior, rebalancing_weights, smooth_prior
from tests.conftest import REFERENCE


def test_weights_on_the_reference_prior():
    p = np.load(REFERENCE / "prior_probs.npy")
    w = rebalancing_weights(p, 0.5)
    assert np.isclose((p * w).sum(), 1.0)
    # rarer bins weigh more, strictly
    order = np.argsort(p)
    assert np.all(np.diff(w[order]) <= 1e-12)
    # the mix with the uniform bounds the weights: max / min <= ((1-l) p_max + l/Q) / (l/Q)
    q = p.size
    assert w.max() / w.min() <= ((0.5 * p.max() + 0.5 / q) / (0.5 / q)) + 1e-9
    # lam = 1 gives uniform weights
    np.testing.assert_allclose(rebalancing_weights(p, 1.0), 1.0)


def test_smoothing_keeps_mass_and_spreads():
    bins = canonical_bins()
    p = np.zeros(bins.q)
    p[100] = 1.0
    s = smooth_prior(p, bins.centres, 5.0)
    assert np.isclose(s.sum(), 1.0)
    assert 0.3 < s[100] < 1.0  # neighbours at distance 10 get exp(-2) of the centre each
    d = np.linalg.norm(bins.centres - bins.centres[100], axis=1)
    assert s[d > 30].sum() < 1e-6


def test_histograms_merge_by_addition(rng):
    ab = rng.uniform(-100, 100, (10000, 2))
    whole = ABHistogram().add(ab)
    parts = ABHistogram().add(ab[:3000]) + ABHistogram().add(ab[3000:])
    np.testing.assert_array_equal(whole.counts, parts.counts)
    assert whole.total == 10000


def test_empirical_prior_counts_nearest_bins():
    bins = canonical_bins(with_reference_prior=False)
    hist = ABHistogram().add(np.repeat(bins.centres[[5, 7]], [30, 10], axis=0))
    p = empirical_prior(hist, bins.centres)
    assert np.isclose(p[5], 0.75) and np.isclose(p[7], 0.25)
    fitted = fit_prior(bins, hist, RebalanceConfig())
    assert fitted.weights[5] < fitted.weights[7] < fitted.weights[0]
    assert fitted.params["pixels"] == 40
