"""Model-specific behaviour: moments of sample, fallbacks, errors with the fix."""

import numpy as np
import pytest

from scoredenoise.noise import (
    Gamma,
    GammaCorrelated,
    Gaussian,
    GaussianSignal,
    NoiseModelError,
    Poisson,
    PoissonGaussian,
    PoissonGaussianMixture,
    Rayleigh,
    RayleighGaussian,
    get_noise_model,
)

N = 400_000


@pytest.mark.parametrize("model, mean, var", [
    (Gaussian(sigma=7.0), lambda x: x, lambda x: 49.0),
    (GaussianSignal(a=0.1, b=5.0), lambda x: x, lambda x: (0.1 * x + 5) ** 2),
    (Gamma(alpha=26.0), lambda x: x, lambda x: x ** 2 / 26),
    (Poisson(lam=0.2), lambda x: x, lambda x: x / 0.2),
    (Rayleigh(sigma=0.3), lambda x: x * (1 + 0.3 * np.sqrt(np.pi / 2)),
     lambda x: x ** 2 * 0.09 * (4 - np.pi) / 2),
    (PoissonGaussian(gain=2.5, offset=100.0, read_noise=4.0), lambda x: x + 100,
     lambda x: 2.5 * x + 16),
    (PoissonGaussianMixture(lam=0.2, sigma=10.0), lambda x: x, lambda x: x / 0.2 + 100),
    (RayleighGaussian(rayleigh_sigma=0.3, sigma=10.0),
     lambda x: x * (1 + 0.3 * np.sqrt(np.pi / 2)), lambda x: x ** 2 * 0.09 * (4 - np.pi) / 2 + 100),
])
def test_sample_moments(model, mean, var):
    x = 80.0
    y = model.sample(np.full(N, x), rng=0)
    se_mean = np.sqrt(var(x) / N)
    assert abs(y.mean() - mean(x)) < 5 * se_mean
    assert abs(y.var() / var(x) - 1) < 0.02


def test_correlated_sample_keeps_mean_and_correlates_neighbours():
    m = GammaCorrelated(alpha=4.0)
    y = m.sample(np.full((256, 256), 50.0), rng=1)
    assert abs(y.mean() - 50) < 0.2
    r = y - y.mean()
    corr = (r[:, 1:] * r[:, :-1]).mean() / r.var()
    # lag-1 correlation of the paper's kernel applied to white noise: (sum k_i k_(i+1)) / sum k^2
    k = m.operator.as_array()
    expected = (k[:, 1:] * k[:, :-1]).sum() / (k ** 2).sum()
    assert abs(corr - expected) < 0.02


def test_poisson_gaussian_equals_table1_row13():
    """poisson-gaussian with gain 1/lam, offset 0, read noise sigma is poisson+gaussian."""
    rng = np.random.default_rng(2)
    y, s = rng.uniform(-20, 300, 500), rng.normal(0, 0.02, 500)
    a = PoissonGaussian(gain=5.0, offset=0.0, read_noise=10.0).solve(y, s)
    b = PoissonGaussianMixture(lam=0.2, sigma=10.0).solve(y, s)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    c = PoissonGaussian(gain=5.0, offset=30.0, read_noise=10.0).solve(y + 30, s)
    np.testing.assert_allclose(c, a, rtol=1e-12)


def test_gamma_denominator_nonpositive_keeps_noisy_value():
    m = Gamma(alpha=26.0)
    y = np.array([10.0, 10.0, 10.0])
    s = np.array([2.5, 3.0, 0.0])  # alpha - 1 - y s = 0, -5, 25
    x = m.solve(y, s)
    np.testing.assert_array_equal(x[:2], y[:2])
    assert x[2] == pytest.approx(26 * 10 / 25)


def test_poisson_mixture_dark_pixel_goes_to_zero():
    m = PoissonGaussian(gain=2.0, offset=100.0, read_noise=5.0)
    # z = y - offset + r^2 s = 80 - 100 + 0 = -20 < -gain/2: no root
    assert m.solve(np.array([80.0]), np.array([0.0]))[0] == 0.0


def test_rayleigh_mixture_nonpositive_z_goes_to_zero():
    m = RayleighGaussian(rayleigh_sigma=0.3, sigma=10.0)
    assert m.solve(np.array([-5.0]), np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize("name, params, match", [
    ("poisson-gaussian", dict(gain=-1), "gain must be > 0, got -1"),
    ("poisson-gaussian", dict(gain=0), "gain must be > 0, got 0"),
    ("poisson-gaussian", dict(read_noise=-2), "read_noise must be >= 0, got -2"),
    ("gamma", dict(alpha=1.0), r"alpha must be > 1, got 1; alpha <= 1 has no"),
    ("poisson", dict(lam=0), "lam must be > 0, got 0"),
    ("gaussian", dict(sigma=-3), "sigma must be > 0, got -3"),
    ("rayleigh", dict(sigma=float("nan")), "sigma must be finite"),
    ("gaussian", dict(sigma="abc"), "sigma must be a number, got 'abc'"),
    ("gaussian-signal", dict(a=-0.5), "a must be >= 0, got -0.5"),
    ("gamma-correlated", dict(kernel=[[1, 1], [1, 1]]), "kernel sizes must be odd"),
    ("gamma-correlated", dict(kernel=np.ones((3, 3)) / 9), "not stably invertible"),
    ("gaussian", dict(bogus=1), "has no parameter .bogus.; its parameters are: sigma"),
])
def test_bad_parameters_name_value_and_fix(name, params, match):
    with pytest.raises((NoiseModelError, TypeError), match=match):
        get_noise_model(name, **params)


def test_unknown_model_lists_choices():
    with pytest.raises(NoiseModelError, match="unknown noise model 'poison'.*poisson-gaussian"):
        get_noise_model("poison")


@pytest.mark.parametrize("model, y, match", [
    (Gamma(), [1.0, -2.0, 0.0], r"y must be > 0 .* 2 of 3 values are not \(smallest -2\).*"
                                 r"gamma\+gaussian"),
    (Poisson(), [1.0, -0.5], r"y must be >= 0 .*poisson-gaussian"),
    (Rayleigh(), [0.0, 1.0], r"y must be > 0"),
    (GammaCorrelated(), [[-1.0] * 4] * 4, r"y must be > 0"),
])
def test_data_outside_support(model, y, match):
    y = np.asarray(y)
    with pytest.raises(NoiseModelError, match=match):
        model.solve(y, np.zeros_like(y))


def test_mixtures_accept_any_real_y():
    PoissonGaussian(gain=2.0, offset=100, read_noise=3).solve(np.array([-50.0]), np.zeros(1))


def test_inputs_are_never_modified(rng):
    y = rng.uniform(1, 200, (16, 16))
    s = rng.normal(0, 0.01, (16, 16))
    y0, s0 = y.copy(), s.copy()
    for name in ("gamma", "poisson-gaussian", "rayleigh-correlated+gaussian"):
        get_noise_model(name).solve(y, s)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(s, s0)


def test_integer_images_are_accepted():
    y = np.arange(1, 17, dtype=np.uint16).reshape(4, 4)
    x = PoissonGaussian(gain=2.0).solve(y, np.zeros((4, 4), np.float32))
    assert x.dtype == np.float32


def test_camera_parameters_from_paper_scale():
    """Doc example: the paper's lam=0.2 on 0-255 data is lam=0.2*255/4095 on 12-bit data."""
    m = Poisson(lam=0.2).rescaled(4095 / 255)
    assert m.lam == pytest.approx(0.2 * 255 / 4095)


def test_implausible_values_are_named_with_the_data_range():
    nm = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=1e6)
    [msg] = nm.implausible((90.0, 4000.0))
    assert msg.startswith("read_noise = 1e+06 (data units) is larger than the data (90 to 4000)")
    assert get_noise_model("poisson-gaussian", gain=2.0, offset=100.0,
                           read_noise=3.0).implausible((90.0, 4000.0)) == []
    # a gain above the whole range: less than one photon over the image
    assert "gain = 500" in get_noise_model("poisson-gaussian", gain=500.0).implausible(
        (0.0, 255.0))[0]
    # dimensionless parameters are not compared with the data
    assert get_noise_model("gamma", alpha=1e5).implausible((0.0, 1.0)) == []
