import numpy as np

from colorize_core.metrics import auc, colourfulness, delta_colourfulness, psnr


def test_auc_bounds_and_order(rng):
    truth = rng.uniform(-50, 50, (100, 2))
    assert auc(truth, truth) == 1.0
    near = truth + 5
    far = truth + 60
    assert 1.0 > auc(near, truth) > auc(far, truth) > 0.0
    # errors of exactly 10 everywhere: within threshold t for t >= 10 -> 141/151
    assert np.isclose(auc(truth + np.array([6.0, 8.0]), truth), 141 / 151)


def test_rebalanced_auc_weights_pixels():
    truth = np.zeros((4, 2))
    pred = np.array([[0, 0], [0, 0], [0, 0], [200, 0]], float)
    plain = auc(pred, truth)
    assert np.isclose(plain, 0.75)
    assert auc(pred, truth, np.array([1, 1, 1, 3.0])) < plain


def test_psnr_and_colourfulness(rng):
    img = rng.random((10, 10, 3))
    assert psnr(img, img) == float("inf")
    assert 19 < psnr(np.clip(img + 0.1, 0, 1), img) < 21
    gray = np.full((10, 10, 3), 128.0)
    assert colourfulness(gray) == 0.0
    red = np.zeros((10, 10, 3))
    red[..., 0] = 255
    # signed opponents: rg = 255, yb = 127.5, no spread
    assert np.isclose(colourfulness(red), 0.3 * np.hypot(255, 127.5))
    assert delta_colourfulness(gray, red) < 0


def test_auc_accumulator_equals_one_shot(rng):
    from colorize_core.metrics import AucAccumulator

    truth = rng.uniform(-80, 80, (3, 500, 2))
    pred = truth + rng.normal(0, 20, truth.shape)
    w = rng.uniform(0.1, 5, (3, 500))
    acc, accw = AucAccumulator(), AucAccumulator()
    for i in range(3):
        acc.add(pred[i], truth[i])
        accw.add(pred[i], truth[i], w[i])
    assert np.isclose(acc.value, auc(pred, truth))
    assert np.isclose(accw.value, auc(pred, truth, w))
