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
    low = prior.sigma_range[0] * float(prior.scale[0])  # data units, as the message says
    with pytest.raises(ValueError, match=rf"at or below the lowest level .*\({low:.4g} data"):
        sd.sample_posterior(y, prior, sigma=low)
    with pytest.raises(ValueError, match="lower step or ratio"):
        sd.sample_posterior(y, prior, sigma=0.05, step=0.2)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        sd.sample_posterior(y, prior, sigma=0)
    with pytest.raises(ValueError, match="this model is a prior"):
        sd.denoise(y, prior, "gaussian", sigma=0.05)
    with pytest.raises(ValueError, match="drop conditioned=False"):
        sd.train(clean, objective="prior", conditioned=False, steps=1)


def test_camera_noise_sampled_in_the_stabilised_domain_covers_the_truth():
    """Algorithm 1 on camera data through the generalized Anscombe transform: with a
    Gaussian prior on the transformed clean image m(x), the transformed data are m(x) plus
    noise of about N(0, 1), and the samples mapped back to ADU bracket the truth as their
    spread says (z-scores of rms about 1; an untransformed run with the noise taken as
    Gaussian of the mean variance would be mis-scaled in the dark and the bright)."""
    cam = sd.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5, read_noise=1.0)
    rng = np.random.default_rng(0)
    mu, tau = 8.0, 1.5  # prior in the transformed domain: about 8 to 100 photons
    z = rng.normal(mu, tau, (48, 48))
    x = cam.unstabilise(z)  # the clean image, ADU with the offset
    y = cam.sample(x - 3.5, rng=1)
    t = torch.from_numpy(cam.stabilise(y))

    def prior_score(v, s):
        return -(v - mu) / (tau ** 2 + s ** 2)

    zs = annealed_langevin(t, prior_score, sigma=1.0, levels=langevin_levels(1.0, 0.01),
                           n_samples=16, rng=2).numpy()
    xs = cam.unstabilise(zs)
    assert xs.min() >= 3.5  # never below the offset
    # the posterior of z is Gaussian: mean (tau^2 t + mu) / (tau^2 + 1), var tau^2 / (tau^2 + 1)
    post_sd = tau / np.sqrt(tau ** 2 + 1)
    score = (z - zs.mean(0)) / np.sqrt(post_sd ** 2 * (1 + 1 / 16))
    assert np.sqrt(np.mean(score ** 2)) == pytest.approx(1.0, abs=0.1)
    assert zs.std(0).mean() == pytest.approx(post_sd, rel=0.1)
    # in ADU the samples spread more where the signal (and so the shot noise) is larger
    bright = x > np.median(x)
    assert xs.std(0)[bright].mean() > 1.1 * xs.std(0)[~bright].mean()


def test_camera_priors_record_their_camera_and_sampling_checks_it(tmp_path, monkeypatch):
    """train_prior(..., noise_model=camera) trains on the stabilised averages and records the
    camera; sample_posterior then transforms the data, samples at sigma = 1 in that domain and
    maps each sample back to ADU; a different camera, a missing one or a non-camera prior
    for camera data is refused with the reason."""
    import scoredenoise.langevin as lg

    cam = sd.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5, read_noise=1.0)
    rng = np.random.default_rng(0)
    averages = [(40 + 20 * rng.random((48, 48))).astype(np.float32) for _ in range(2)]
    prior = sd.train_prior(averages, noise_model=cam, preset="small", steps=3,
                           patch_size=16, batch_size=2, seed=0)
    assert prior.meta["stabilised_by"] == cam.to_dict()
    # trained on the transformed images: its normalisation is of the transformed range
    assert float(prior.offset[0]) < 10 < float(cam.stabilise_clean(averages[0]).max()) * 2
    prior.save(tmp_path / "p.sdmodel")
    prior = sd.load_model(tmp_path / "p.sdmodel")
    assert prior.meta["stabilised_by"] == cam.to_dict()
    y = cam.sample(averages[0] - 3.5, rng=1).astype(np.float32)

    seen = {}

    def fake(image, prior_, sigma, sigma_min, **opts):
        seen.update(image=image, sigma=sigma)
        return np.stack([image, image + 0.5])

    monkeypatch.setattr(lg, "_sample_gaussian", fake)
    xs = sd.sample_posterior(y, prior)  # the recorded camera by default
    np.testing.assert_allclose(seen["image"], cam.stabilise(y), rtol=1e-6)
    assert seen["sigma"] == 1.0
    np.testing.assert_allclose(xs[1], cam.unstabilise(cam.stabilise(y) + 0.5), rtol=1e-5)
    sd.sample_posterior(y, prior, noise_model=cam.replace(gain=3.81))  # within 1 %: same
    monkeypatch.undo()

    xs = sd.sample_posterior(y, prior, n_samples=2, rng=0, ratio=0.8)
    assert xs.shape == (2, 48, 48) and np.all(np.isfinite(xs)) and xs.min() >= 3.5
    with pytest.raises(ValueError, match=r"trained for poisson-gaussian\(gain=3.8.*not"):
        sd.sample_posterior(y, prior, noise_model=cam.replace(gain=5.0))
    with pytest.raises(ValueError, match="drop sigma"):
        sd.sample_posterior(y, prior, sigma=2.0)
    with pytest.raises(ValueError, match="stabilised for poisson-gaussian"):
        sd.sample_posterior(y, prior, noise_model=sd.get_noise_model("gaussian", sigma=2.0))
    plain = sd.train_prior(averages, preset="small", steps=2, patch_size=16, batch_size=2)
    assert "stabilised_by" not in plain.meta
    with pytest.raises(ValueError, match="needs a prior trained on stabilised images"):
        sd.sample_posterior(y, plain, noise_model=cam)
    with pytest.raises(ValueError, match="not poisson"):
        sd.sample_posterior(y, plain, noise_model=sd.get_noise_model("poisson", lam=1.0))
    with pytest.raises(ValueError, match="only poisson-gaussian has"):
        sd.train_prior(averages, noise_model=sd.get_noise_model("gamma"), steps=1)
    with pytest.raises(ValueError, match="sigma= .*or noise_model"):
        sd.sample_posterior(y, plain)
