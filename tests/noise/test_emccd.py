"""The electron-multiplying detector model: moments, the exact score, its solve, the estimate."""

import numpy as np
import pytest
import torch

import scoredenoise as sd
from scoredenoise.noise import NoiseModelError, get_noise_model


def _bisect(m, y, s, hi=5000.0, iters=48):
    """Per-pixel reference root of score(x, y) = s: bisection on the model's own posterior
    score (its quadrature computed once per pixel), x = 0 where s is below score(0, y)."""
    yt = torch.as_tensor(y - m.offset, dtype=torch.float64)
    logq, d = m._log_q(yt, m._counts(float(yt.max())))
    st = torch.as_tensor(s, dtype=torch.float64)
    lo, up = torch.zeros_like(yt), torch.full_like(yt, hi / m.gain)
    for _ in range(iters):
        mid = (lo + up) / 2
        f = m._posterior(mid[:, None], logq, d)[0][:, 0]
        lo, up = torch.where(f < st, mid, lo), torch.where(f < st, up, mid)
    x = m.gain * (lo + up) / 2
    return torch.where(st <= d[:, 0], 0.0, x).numpy()


@pytest.mark.parametrize("shape", [1.0, 4.0])
def test_sample_moments_follow_the_noise_level_function(shape):
    m = get_noise_model("emccd", gain=12.0, shape=shape, offset=100.0, read_noise=3.0)
    y = m.sample(np.full(400_000, 50.0), rng=1)
    assert abs(y.mean() - 150.0) < 0.1
    var = 12.0 * (1 + 1 / shape) * 50.0 + 9.0
    assert abs(y.var() / var - 1) < 0.02
    np.testing.assert_allclose(m.noise_level(150.0), var)


# read noise below, near and above the pulse height; integer data (rows per value) and float
# data (the nearest of a grid of rows)
@pytest.mark.parametrize("gain,shape,read,integer", [(10.0, 1.0, 1.0, True),
                                                     (20.8, 1.0, 6.0, False),
                                                     (4.0, 3.0, 0.5, True),
                                                     (1.0, 1.0, 3.0, False)])
def test_solve_equals_per_pixel_bisection(gain, shape, read, integer):
    rng = np.random.default_rng(3)
    m = get_noise_model("emccd", gain=gain, shape=shape, offset=5.0, read_noise=read)
    x = np.linspace(0, 250, 24)[None, :] * rng.uniform(0.5, 1.0, (4, 1))
    y = m.sample(x, rng=rng)
    if integer:
        y = np.round(y)
    s = np.asarray(m.score(x * rng.uniform(0.8, 1.2, x.shape), y))
    fast = np.asarray(m.solve(y, s))
    ref = _bisect(m, y.ravel(), s.ravel()).reshape(y.shape)
    span = float(y.max() - y.min())
    np.testing.assert_allclose(fast, ref, atol=1e-3 * span)


def test_bright_pixels_far_above_their_photons_keep_an_exact_score():
    """y 40 pulse heights above one photon: the tail of the pulses' quadrature (from the
    survival function, not 1 - CDF) keeps the score increasing in x."""
    m = get_noise_model("emccd", gain=10.0, shape=1.0, offset=0.0, read_noise=1.0)
    y = np.full(6, 406.0)
    f = np.asarray(m.score(np.array([1e-3, 0.1, 1.0, 100.0, 200.0, 400.0]), y))
    assert np.all(np.diff(f) > 0)
    # one photon dominates at a tiny rate: the exponential's score -1/gain
    assert abs(f[0] + 0.1) < 2e-3


def test_estimate_noise_measures_the_pulse_height():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    clean = 20 + 180 * (np.sin(xx / 19.0) * np.cos(yy / 23.0)) ** 2
    m = get_noise_model("emccd", gain=8.0, shape=1.0, offset=50.0, read_noise=2.0)
    y = m.sample(clean, rng=rng)
    est = sd.estimate_noise(y, "emccd")
    got = est.noise_model
    assert got.name == "emccd" and got.shape == 1.0
    assert abs(got.gain / 8.0 - 1) < 0.15, got
    # offset and read noise trade off in one image's variances; the noise level function
    # they give is the true one over the data's range
    for mean in (70.0, 120.0, 230.0):
        assert abs(got.noise_level(mean) / m.noise_level(mean) - 1) < 0.1, (mean, got)
    assert any("1 + 1/shape" in n for n in est.notes)


@pytest.mark.parametrize("shape", [1.0, 3.0])
def test_repeated_frames_measure_the_pulse_shape(shape):
    # photon transfer measures the third cumulant: (1 + 2/shape) / (1 + 1/shape) times
    # photon counting's, from which the shape; one image cannot (it keeps the given one)
    m = get_noise_model("emccd", gain=4.0, shape=shape, offset=10.0, read_noise=2.0)
    x = np.tile(np.linspace(0, 400, 256), (64, 1))
    frames = np.stack([m.sample(x, rng=i) for i in range(30)])
    est = sd.estimate_noise(frames, "emccd", frames_axis=0, offset=10.0)
    got = est.noise_model
    assert "shape" in est.estimated and est.stderr["shape"] > 0
    assert abs(got.shape - shape) < max(3 * est.stderr["shape"], 0.25 * shape), est.stderr
    assert abs(got.gain / 4.0 - 1) < 0.06, got
    assert est.derived["third_cumulant_ratio"] == pytest.approx(
        (1 + 2 / shape) / (1 + 1 / shape), abs=0.1)
    assert any("third cumulant" in n for n in est.notes)
    # a given shape is kept; so is the default on one image (no third cumulant there)
    kept = sd.estimate_noise(frames, "emccd", frames_axis=0, offset=10.0, shape=2.0)
    assert kept.noise_model.shape == 2.0 and "shape" not in kept.estimated
    single = sd.estimate_noise(frames[0], "emccd", offset=10.0)
    assert single.noise_model.shape == 1.0 and "shape" not in single.estimated
    assert any("frames_axis" in n for n in single.notes)


def test_poisson_gaussian_frames_give_no_pulse_spread():
    # fixed photon steps: ratio 1, so the shape goes to the end of its range, where emccd is
    # poisson-gaussian (its excess noise factor 1 + 1/50), and poisson-gaussian has no note
    cam = get_noise_model("poisson-gaussian", gain=4.0, offset=10.0, read_noise=2.0)
    x = np.tile(np.linspace(0, 400, 256), (64, 1))
    frames = np.stack([cam.sample(x, rng=i) for i in range(30)])
    pg = sd.estimate_noise(frames, frames_axis=0, offset=10.0)
    assert pg.derived["third_cumulant_ratio"] == pytest.approx(1.0, abs=0.1)
    assert not any("third cumulant" in n for n in pg.notes)
    em = sd.estimate_noise(frames, "emccd", frames_axis=0, offset=10.0).noise_model
    assert em.shape >= 8.0 and em.gain * em.excess == pytest.approx(4.0, rel=0.05)


def test_skewed_frames_suggest_emccd_to_a_poisson_gaussian_estimate():
    m = get_noise_model("emccd", gain=4.0, shape=1.0, offset=10.0, read_noise=2.0)
    x = np.tile(np.linspace(0, 400, 256), (64, 1))
    frames = np.stack([m.sample(x, rng=i) for i in range(30)])
    est = sd.estimate_noise(frames, frames_axis=0, offset=10.0)
    assert any("'emccd'" in n and "third cumulant" in n for n in est.notes), est.notes


def test_solve_on_emccd_data_recovers_the_clean_image_with_the_true_score():
    """With the likelihood score at the clean image, the solve returns it (the identity the
    denoiser relies on), in the input's units through scoredenoise's solve path."""
    rng = np.random.default_rng(5)
    m = get_noise_model("emccd", gain=15.0, shape=1.0, offset=10.0, read_noise=2.0)
    x = rng.uniform(1, 300, (32, 32))
    y = m.sample(x, rng=rng)
    s = np.asarray(m.score(x, y))
    np.testing.assert_allclose(np.asarray(m.solve(y, s)), x, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kw,match", [({"shape": 0.2}, "shape must be >= 0.5, got 0.2"),
                                      ({"gain": -1.0}, "gain must be > 0, got -1"),
                                      ({"read_noise": 0.0}, "read_noise must be > 0")])
def test_bad_parameters_name_the_value(kw, match):
    with pytest.raises(NoiseModelError, match=match):
        get_noise_model("emccd", **kw)


def test_rejects_a_negative_clean_image():
    with pytest.raises(NoiseModelError, match="non-negative"):
        get_noise_model("emccd").sample(np.array([-1.0, 2.0]), rng=0)
