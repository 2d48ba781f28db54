"""The noise level function of one image or stack (scoredenoise.nlf): measurement and fit."""

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.estimate import fit_noise_level
from scoredenoise.nlf import NoiseLevelFunction, noise_level_function
from scoredenoise.noise import NoiseModelError, get_noise_model

from .test_estimate import _scene


def test_missing_values_are_left_out():
    """NaN and inf (outside a registered field, dead pixels): no statistic that includes one
    is used (before: 'array of sample points is empty')."""
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    y = cam.sample(_scene(512, peak=1500.0), rng=1)
    y[:, :100] = np.nan
    y[300, 300] = np.inf
    nlf = noise_level_function(y)
    assert np.isfinite(nlf.variance).all()
    # the pixels within the 13-pixel margin of a missing one are not used
    assert nlf.count.sum() <= (512 - 26) * (512 - 26 - 100) - 27 * 27
    est = sd.estimate_noise(y, offset=100.0)
    assert abs(est.params["gain"] - 2.0) < 3 * est.stderr["gain"]
    with pytest.raises(ValueError, match="too few"):
        sd.estimate_noise(np.full((64, 64), np.nan))


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="channels"):
        noise_level_function(np.zeros((3, 64, 64)), axes="CYX")
    with pytest.raises(ValueError, match="at least"):
        noise_level_function(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="clip must be"):
        noise_level_function(np.zeros((64, 64)), clip="yes")
    falling = NoiseLevelFunction(np.array([10.0, 20.0, 30.0]), np.array([9.0, 8.0, 7.0]),
                                 np.full(3, 0.1), np.full(3, 500), 10.0, "single-image")
    with pytest.raises(NoiseModelError, match="does not grow with the mean"):
        fit_noise_level(falling, "poisson-gaussian")
    with pytest.raises(NoiseModelError, match="unknown noise model"):
        fit_noise_level(falling, "nope")


def test_affine_fit_weights_come_from_the_fitted_line_not_the_measured_variances():
    """A level set's measured standard error scales with its measured variance; weighting by
    it favours the sets that came out low and biases the slope (the gain) down. The fit
    reweights with the fitted line's variances: unbiased where the plain weighted fit is
    2 % low."""
    from scoredenoise import nlf as est_mod  # where the noise level function lives

    def mean_slope_error(steps):
        rng = np.random.default_rng(0)
        old = est_mod._IRLS_STEPS
        est_mod._IRLS_STEPS = steps
        try:
            errs = []
            for _ in range(300):
                m = np.linspace(0, 100, 40)
                rel = np.sqrt(2 / 200)  # 200 pixels a level set
                v = (2.0 * m + 30) * (1 + rel * rng.standard_normal(40))
                nlf = est_mod.NoiseLevelFunction(mean=m, variance=v, stderr=v * rel,
                                                 count=np.full(40, 200.0), black_level=0.0,
                                                 method="single-image")
                errs.append(nlf.affine_fit()[0] / 2.0 - 1)
            return float(np.mean(errs))
        finally:
            est_mod._IRLS_STEPS = old

    assert mean_slope_error(0) < -0.015  # the bias this guards against
    assert abs(mean_slope_error(est_mod._IRLS_STEPS)) < 0.004


def test_every_jackknife_replicate_leaves_pixels_out():
    """On small planes some of the 16 groups hold no pixels; leaving one out is no replicate
    (counted as one, it would shrink the jackknife's error)."""
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    x = np.stack([_scene(48, peak=800.0, seed=s) for s in range(3)])
    nlf = noise_level_function(cam.sample(x, rng=7), axes="ZYX")
    assert 8 <= len(nlf.replicates) < 16
    assert all(r.count.sum() < nlf.count.sum() for r in nlf.replicates)
