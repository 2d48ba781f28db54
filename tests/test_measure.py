"""The measurement primitives (scoredenoise._measure, and the clipped moments they use):
high-pass responses, their calibration, windows, the texture test."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import scoredenoise as sd
from scoredenoise._measure import _windows
from scoredenoise.noise import get_noise_model


def test_censored_moments_match_clipped_samples():
    from scoredenoise.noise._clipping import normal_clipped_moments as _censored_moments

    rng = np.random.default_rng(0)
    for mu, var, lo, hi in [(0.5, 4.0, 0.0, np.inf), (9.0, 9.0, -np.inf, 10.0),
                            (5.0, 16.0, 0.0, 8.0), (100.0, 1.0, 0.0, 255.0)]:
        y = np.clip(rng.normal(mu, np.sqrt(var), 2_000_000), lo, hi)
        m, v = _censored_moments(np.array([mu]), np.array([var]), lo, hi)
        assert m[0] == pytest.approx(y.mean(), abs=5e-3 * np.sqrt(var))
        assert v[0] == pytest.approx(y.var(), rel=5e-3)


def test_stored_calibration_matches_a_fresh_measurement():
    from scoredenoise._measure import _calibration
    from scoredenoise.nlf import _measure_calibration

    fresh = _measure_calibration(planes=4, size=512, seed=7)  # other noise than the stored
    for key, value in _calibration().items():
        assert fresh[key] == pytest.approx(value, rel=0.01), key


def test_the_texture_test_does_not_bias_the_pixels_it_keeps():
    """The test looks at responses whose windows share no pixel with the kept response's: on
    white noise the kept pixels' mean square is the noise variance, with no truncation to
    correct. A test on the 7x7 mean of the responses themselves (the pixel's own included)
    keeps the pixels whose noise came out low, 1.9 % below it."""
    from scipy.ndimage import uniform_filter

    from scoredenoise._measure import _plane_statistics, _surroundings

    kept, own = [], []
    for seed in range(3):
        y = np.random.default_rng(seed).normal(size=(512, 512))
        d2, _, _, _, ok, _ = _plane_statistics(y)
        for stat, out in ((_surroundings(d2), kept), (uniform_filter(d2, 7), own)):
            lv = stat[ok]
            out.append(d2[ok][lv < np.quantile(lv, 0.97)].mean())
    assert np.mean(kept) == pytest.approx(1.0, abs=0.004)
    assert np.mean(own) < 0.99


def test_count_clipped_moments_match_clipped_samples():
    """The exact clipped moments of photon counts with read noise, on their rate nodes and
    between them, against samples; the normal form is far off where counts are few."""
    from scoredenoise.noise._clipping import count_clipped_moments, normal_clipped_moments

    rng = np.random.default_rng(0)
    for step, offset, sigma, lo, hi in [(1.0, 0.0, 0.0, 0.0, np.inf),  # a photon counter
                                        (2.0, 0.0, 3.0, 0.0, np.inf),  # offset set too low
                                        (2.0, 100.0, 3.0, 0.0, 160.0)]:  # saturating
        signal = np.linspace(0.0, 60.0, 400)  # > the nodes: interpolated between them
        m, v = count_clipped_moments(signal, step, offset, sigma, lo, hi)
        for i in (0, 37, 150, 399):
            y = step * rng.poisson(signal[i] / step, 400_000) + offset
            y = np.clip(y + sigma * rng.normal(size=y.size), lo, hi)
            assert m[i] == pytest.approx(y.mean(), abs=0.01 + 0.01 * y.std())
            assert v[i] == pytest.approx(y.var(), rel=0.02, abs=0.01)
    # a photon counter at 0.5 counts: its zeros are no clipping, var = mean
    m, v = count_clipped_moments(np.array([0.5]), 1.0, 0.0, 0.0, 0.0, np.inf)
    assert (m[0], v[0]) == pytest.approx((0.5, 0.5), rel=1e-6)
    assert normal_clipped_moments(np.array([0.5]), np.array([0.5]), 0.0, np.inf)[1][0] < 0.35


def test_windows_keep_to_the_pixel_budget_and_spread_over_the_data():
    """Before: every plane up to 32 was measured whole (32 planes of 1024x1024: 7.9 GB
    peak; of 2048x2048 about 30 GB)."""
    # a stack: whole planes, evenly spaced from the first to the last
    win = _windows((1024, 1024), 100, 32, 2 ** 23)
    assert [p for p, _, _ in win] == [0, 14, 28, 42, 57, 71, 85, 99]
    assert all((r, c) == (slice(0, 1024), slice(0, 1024)) for _, r, c in win)
    assert [p for p, _, _ in _windows((2048, 2048), 100, 32, 2 ** 23)] == [0, 99]
    assert len(_windows((512, 512), 100, 32, 2 ** 23)) == 32  # max_planes still caps
    # a plane larger than the budget: tiles, inside it, disjoint, from corner to corner
    for shape, budget in [((5000, 7000), 2 ** 23), ((1500, 1300), 2 ** 18),
                          ((100, 200_000), 2 ** 23)]:
        win = _windows(shape, 3, 32, budget)
        assert {p for p, _, _ in win} == {1}  # the middle plane
        mask = np.zeros(shape, int)
        for _, r, c in win:
            mask[r, c] += 1
        assert mask.max() == 1 and 0.5 * budget < mask.sum() <= budget
        if len(win) > 1:
            assert mask[0, 0] and mask[-1, -1]
        else:  # one tile: the middle
            assert mask[shape[0] // 2, shape[1] // 2]


def test_high_pass_basis_is_orthonormal_and_blind_to_polynomials():
    from scoredenoise._measure import (
        _FOOTPRINT,
        _HIGH_PASS,
        _degrees_of_freedom,
        _high_pass_basis,
    )

    B = np.stack([k.ravel() for k in _HIGH_PASS])
    assert B.shape == (15, 49)  # 49 - 34 polynomials of degree <= 7 that a 7x7 grid holds
    np.testing.assert_allclose(B @ B.T, np.eye(15), atol=1e-10)
    yy, xx = np.mgrid[-3:4, -3:4].astype(float) / 3
    for i in range(8):
        for j in range(8 - i):
            np.testing.assert_allclose(B @ (yy ** i * xx ** j).ravel(), 0, atol=1e-10)
    assert _FOOTPRINT.sum() == pytest.approx(1.0) and (_FOOTPRINT >= 0).all()
    # what the mean square is worth in independent samples per pixel: 1 for the pixel itself,
    # 0.51 for the 3x3 window minus a quadratic, 0.26 for the compact 3x3 kernel alone
    assert _degrees_of_freedom((np.ones((1, 1)),)) == pytest.approx(1.0)
    assert _degrees_of_freedom(_HIGH_PASS) == pytest.approx(0.474, abs=0.002)
    assert _degrees_of_freedom(_high_pass_basis(1, 2)) == pytest.approx(0.515, abs=0.002)
    compact = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]]) / 6.0
    assert _degrees_of_freedom((compact,)) == pytest.approx(0.264, abs=0.002)
    # the 3x3 basis of degree 3 is that compact kernel alone
    (c,) = _high_pass_basis(1, 3)
    assert abs(float(np.sum(c * compact))) == pytest.approx(1.0)


def test_structure_does_not_leak_into_the_high_pass(monkeypatch):
    """Bright discs with 1-px soft edges at 400 e-: third-order structure of the edges passes a
    3x3 quadratic fit and the texture test (gain 8-9 % high); the 7x7 basis of degree 7 is
    blind to it."""

    import scoredenoise.estimate as E

    n = 384
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    rng = np.random.default_rng(0)
    x = np.zeros((n, n))
    for cy, cx, r in rng.uniform([20, 20, 6], [n - 20, n - 20, 25], size=(40, 3)):
        x = np.maximum(x, ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * rng.uniform(0.3, 1.0))
    x = gaussian_filter(x, 1.0)
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=6.0)
    y = np.clip(np.round(cam.sample(x / x.max() * 800.0, rng=0)), 0, 65535).astype(np.uint16)
    blind = sd.estimate_noise(y, offset=100.0).params["gain"]
    from scoredenoise import _measure, nlf

    quadratic = _measure._high_pass_basis(1, 2)
    for name, value in (("_HIGH_PASS", quadratic),
                        ("_FOOTPRINT", sum(k * k for k in quadratic) / 3),
                        ("_DOF", _measure._degrees_of_freedom(quadratic))):
        # wherever the estimator, the noise level function and the primitives read them
        for module in (E, nlf, _measure):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)
    calibration = nlf._measure_calibration(planes=2, size=512)
    monkeypatch.setattr(_measure, "_CALIBRATION", calibration)
    monkeypatch.setattr(nlf, "_CORRELATED", np.inf)  # its weights belong to the 7x7 basis
    leaky = sd.estimate_noise(y, offset=100.0).params["gain"]
    assert blind == pytest.approx(2.0, rel=0.03)
    assert leaky > 2.0 * 1.05  # the leak measured as noise
