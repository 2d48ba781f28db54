import numpy as np
import pytest
import torch

import scoredenoise as sd
from scoredenoise.langevin import annealed_langevin, langevin_levels

from .test_model import untrained


def test_langevin_on_a_gaussian_prior_samples_the_known_posterior():
    # x ~ N(mu, tau^2) per pixel, y = x + N(0, sigma^2): the prior smoothed by sigma_i has
    # the score -(x - mu) / (tau^2 + sigma_i^2), and the posterior of each pixel is Gaussian,
    # mean (tau^2 y + sigma^2 mu) / (tau^2 + sigma^2), variance tau^2 sigma^2 / (tau^2 + sigma^2)
    mu, tau, sigma = 100.0, 20.0, 15.0
    rng = np.random.default_rng(0)
    x = rng.normal(mu, tau, (64, 64))
    y = torch.from_numpy(x + rng.normal(0, sigma, x.shape))

    def prior_score(z, s):
        return -(z - mu) / (tau ** 2 + s ** 2)

    levels = langevin_levels(sigma, sigma / 100)
    assert levels[0] < sigma and levels[-1] >= sigma / 100 and np.all(np.diff(levels) < 0)
    xs = annealed_langevin(y, prior_score, sigma=sigma, levels=levels, n_samples=8, rng=1)
    assert xs.shape == (8, 64, 64)
    mean = (tau ** 2 * y + sigma ** 2 * mu) / (tau ** 2 + sigma ** 2)
    var = tau ** 2 * sigma ** 2 / (tau ** 2 + sigma ** 2)
    err = (xs - mean).numpy()
    assert abs(err.mean()) < 0.02 * np.sqrt(var)
    assert err.var() / var == pytest.approx(1.0, abs=0.05)
    # the samples differ from each other by the posterior's spread, not by nothing
    assert xs.std(dim=0).mean() > 0.8 * np.sqrt(var)
    # the same seed, the same samples
    again = annealed_langevin(y, prior_score, sigma=sigma, levels=levels, n_samples=8, rng=1)
    torch.testing.assert_close(again, xs)


def test_prior_models_and_the_sampler_limits():
    rng = np.random.default_rng(0)
    clean = [np.clip(rng.normal(0.5, 0.1, (48, 48)), 0, 1).astype(np.float32)
             for _ in range(2)]
    prior = sd.train(clean, objective="prior", preset="small", steps=3, patch_size=16,
                     batch_size=2, seed=0)
    assert prior.conditioned and prior.sigma_range == (0.005, 1.0)
    assert prior.extra_noise == 0.0 and "sigma_a_default" not in prior.meta
    y = clean[0] + rng.normal(0, 0.05, clean[0].shape).astype(np.float32)
    calls = []
    xs = sd.sample_posterior(y, prior, sigma=0.05, n_samples=3, rng=0, ratio=0.9,
                             progress=lambda d, t: calls.append((d, t)))
    assert xs.shape == (3, 48, 48) and xs.dtype == np.float32 and np.all(np.isfinite(xs))
    assert not np.allclose(xs[0], xs[1])
    assert calls[-1][0] == calls[-1][1] > 0
    np.testing.assert_array_equal(
        sd.sample_posterior(y, prior, sigma=0.05, n_samples=3, rng=0, ratio=0.9), xs)
    with pytest.raises(sd.Cancelled):
        sd.sample_posterior(y, prior, sigma=0.05, ratio=0.9, progress=lambda d, t: d < 2)
    with pytest.raises(ValueError, match="objective='prior'"):
        sd.sample_posterior(y, untrained(), sigma=0.05)
    with pytest.raises(ValueError, match="above the highest level"):
        sd.sample_posterior(y, prior, sigma=1e3)
    with pytest.raises(ValueError, match="lower step or ratio"):
        sd.sample_posterior(y, prior, sigma=0.05, step=0.2)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        sd.sample_posterior(y, prior, sigma=0)
    with pytest.raises(ValueError, match="this model is a prior"):
        sd.denoise(y, prior, "gaussian", sigma=0.05)
    with pytest.raises(ValueError, match="drop conditioned=False"):
        sd.train(clean, objective="prior", conditioned=False, steps=1)
