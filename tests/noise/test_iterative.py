"""When the fixed-point solvers (Algorithms 2 and 3) converge, and what happens otherwise."""

import numpy as np
import pytest

from scoredenoise.noise import GaussianSignal, GaussianSignalCorrelated, Rayleigh
from scoredenoise.noise._iterate import fixed_point

from .helpers import clean_image


def test_gaussian_signal_paper_parameters(rng):
    """Paper's a=0.98, b=25: Algorithm 2 converges where |2a(ax+b)s| < 1 and recovers x;
    elsewhere the exact quadratic root still satisfies the equation."""
    m = GaussianSignal(a=0.98, b=25.0)
    x = clean_image(rng, (64, 64))
    y = m.sample(x, rng)
    s = m.score(x, y)
    q = np.abs(2 * m.a * (m.a * x + m.b) * s)
    xs = m.solve(y, s)
    contract = q < 0.5
    assert contract.mean() > 0.1 and (~contract).mean() > 0.3  # both regimes are exercised
    np.testing.assert_allclose(xs[contract], x[contract], rtol=1e-6)
    np.testing.assert_allclose(m.residual(xs, y, s), 0, atol=1e-8)


def test_gaussian_signal_no_real_root_falls_back_to_y():
    m = GaussianSignal(a=0.98, b=25.0)
    y, s = np.array([100.0]), np.array([0.5])  # 4 a s (a y + b) = 242 > 1: no real root
    np.testing.assert_array_equal(m.solve(y, s), y)


def test_gaussian_signal_correlated_converges_in_contraction_regime(rng):
    m = GaussianSignalCorrelated(a=0.1, b=10.0)
    x = clean_image(rng, (32, 32))
    y = m.sample(x, rng)
    s = m.score(x, y)
    q = np.abs(2 * m.a * (m.a * x + m.b) * m.operator.apply(s)).max()
    assert q < 1  # ||A|| = 1 for the paper's kernel: a contraction
    np.testing.assert_allclose(m.solve(y, s), x, rtol=1e-6)


def test_gaussian_signal_correlated_divergence_falls_back_to_y():
    m = GaussianSignalCorrelated(a=0.98, b=25.0)
    y = np.full((8, 8), 100.0)
    s = np.full((8, 8), 0.5)  # q ~ 120: diverges
    np.testing.assert_array_equal(m.solve(y, s), y)


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_rayleigh_converges_under_stated_condition(sigma, rng):
    m = Rayleigh(sigma=sigma)
    x = clean_image(rng, (64, 64))
    y = m.sample(x, rng)
    s = m.score(x, y)
    cond = sigma ** 2 * np.abs(s) * y < 1
    assert cond.mean() > 0.2
    xs = m.solve(y, s)
    np.testing.assert_allclose(xs[cond], x[cond], rtol=1e-6)
    assert np.all((xs > 0) & (xs < y))  # every iterate stays in (0, y)


def test_fixed_point_reports_non_convergence():
    import torch
    x, ok = fixed_point(lambda x: 2 * x + 1, torch.ones(3, dtype=torch.float64), 1.0,
                        max_iter=20)
    assert not ok.any()


def test_gaussian_signal_correlated_white_noise_uses_algorithm5(rng):
    m = GaussianSignalCorrelated(a=0.1, b=10.0, white_sigma=3.0)
    x = clean_image(rng, (32, 32))
    z = GaussianSignalCorrelated(a=0.1, b=10.0).sample(x, rng)
    s = GaussianSignalCorrelated(a=0.1, b=10.0).score(x, z)
    y = z - 9.0 * s  # so that Algorithm 5's z = y + w^2 s is the noise-free part
    np.testing.assert_allclose(m.solve(y, s), x, rtol=1e-6)
    np.testing.assert_allclose(m.residual(m.solve(y, s), y, s), 0,
                               atol=1e-6 * np.abs(s).max())
    with pytest.raises(Exception, match="no closed form"):
        m.score(x, y)
