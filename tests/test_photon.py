"""Photon transfer (scoredenoise.photon): the noise level function of repeated frames of a
static scene."""

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.estimate import fit_noise_level
from scoredenoise.noise import get_noise_model
from scoredenoise.photon import photon_transfer

from .test_estimate import _Lazy, _scene


def test_photon_transfer_and_single_image_agree():
    cam = get_noise_model("poisson-gaussian", gain=3.0, offset=10.0, read_noise=2.0)
    x = _scene(128, peak=600.0)
    frames = np.stack([cam.sample(x, rng=i) for i in range(30)])
    pt = sd.estimate_noise(frames, frames_axis=0, offset=10.0)
    assert pt.nlf.method == "photon-transfer"
    assert pt.params["gain"] == pytest.approx(3.0, rel=0.03)
    slope, icpt, cov = photon_transfer(frames).affine_fit()
    assert slope == pytest.approx(3.0, rel=0.03) and cov.shape == (2, 2)
    with pytest.raises(ValueError, match="at least 3 frames"):
        photon_transfer(frames[:2])


def test_photon_transfer_ignores_slow_drift():
    # illumination rising 20 % over the series (bleaching, lamp warm-up): the plain temporal
    # variance counts the drift as noise at bright pixels; differences of frames do not
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=10.0, read_noise=2.0)
    x = _scene(128, peak=1500.0)
    frames = np.stack([cam.sample(x * (1 + 0.2 * t / 29), rng=t) for t in range(30)])
    drift_free = sd.estimate_noise(frames, frames_axis=0, offset=10.0)
    assert drift_free.params["gain"] == pytest.approx(2.0, rel=0.03)
    plain = fit_noise_level(photon_transfer(frames, differences=False), offset=10.0)
    assert plain.params["gain"] > 2.2


def test_photon_transfer_reads_one_frame_at_a_time():
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=10.0, read_noise=2.0)
    frames = np.stack([cam.sample(_scene(96, peak=400.0), rng=i) for i in range(12)])
    lazy = _Lazy(frames)
    nlf = photon_transfer(lazy)
    assert len(lazy.reads) == 12
    assert nlf.affine_fit()[0] == pytest.approx(2.0, rel=0.05)


def test_third_cumulant_of_repeated_frames():
    # pixels that never reach a limit: the k-statistic per level; photon counts give the
    # square of the variance's slope (ratio 1), unmoved by read noise and a linear drift
    cam = get_noise_model("poisson-gaussian", gain=3.0, offset=10.0, read_noise=4.0)
    x = np.tile(np.linspace(0, 600, 256), (64, 1))
    frames = np.stack([cam.sample(x * (1 + 0.1 * t / 29), rng=t) for t in range(30)])
    nlf = photon_transfer(frames)
    assert nlf.third is not None and len(nlf.third) == len(nlf.third_mean) >= 3
    ratio, se = nlf.third_cumulant_ratio()
    assert 0 < se < 0.1 and abs(ratio - 1.0) < max(3 * se, 0.08)
    assert "third" in nlf.to_dict()
    # the single-image method has none (the scene's structure skews residuals)
    single = sd.noise_level_function(frames[0])
    assert single.third is None and single.third_cumulant_ratio() is None
