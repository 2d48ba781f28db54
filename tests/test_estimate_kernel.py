"""The correlation kernel of the noise, estimated from one image or from repeated frames."""

import json

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.estimate_kernel import NoiseKernel, estimate_noise_kernel
from scoredenoise.noise import PAPER_KERNEL, NoiseModelError

from .test_estimate import _scene

#: a kernel unlike the paper's (sharper, no diagonal)
CROSS = ((0.0, 0.1, 0.0), (0.1, 0.6, 0.1), (0.0, 0.1, 0.0))
SCAN = ((0.15, 0.7, 0.15),)  # along X only


def ramp(n=256, lo=20.0, hi=200.0):
    return np.tile(np.linspace(lo, hi, n), (n, 1))


def blobs(n=256, peak=200.0, seed=0):
    """Structure: smooth blobs on a ramp (a microscopy-like clean image)."""
    return 10 + _scene(n, peak=peak, seed=seed)


def test_recovers_the_papers_kernel_with_honest_errors():
    y = sd.get_noise_model("gaussian-correlated", sigma=10.0).sample(blobs(), rng=1)
    est = estimate_noise_kernel(y)
    assert isinstance(est, NoiseKernel) and est.method == "single-image"
    assert est.kernel.shape == (3, 3) and est.kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(est.kernel, PAPER_KERNEL, atol=0.01)
    assert np.all(np.isfinite(est.stderr)) and np.all(est.stderr > 0)
    assert np.all(np.abs(est.kernel - PAPER_KERNEL) < 5 * est.stderr + 1e-3)
    assert 0.3 < est.chi2 < 2.0
    np.testing.assert_allclose(est.kernel, est.kernel[::-1, ::-1])  # centro-symmetric
    ac = est.autocorrelation
    assert ac.shape == (5, 5) and ac[2, 2] == pytest.approx(1.0)
    assert "noise correlation kernel 3x3" in est.summary()
    json.dumps(est.to_dict())


def test_other_shapes_and_signal_dependent_noise():
    # a kernel along X, and a sharper cross, under Poisson noise (variance with the level)
    x = ramp()
    y = sd.get_noise_model("poisson-correlated", lam=0.5, kernel=SCAN).sample(x, rng=2)
    est = estimate_noise_kernel(y, shape=(1, 3))
    np.testing.assert_allclose(est.kernel, SCAN, atol=0.01)
    y = sd.get_noise_model("poisson-correlated", lam=0.5, kernel=CROSS).sample(x, rng=3)
    np.testing.assert_allclose(estimate_noise_kernel(y, shape=3).kernel, CROSS, atol=0.015)
    # a 3x3 fit of the scan-line kernel puts (almost) nothing off its row
    est = estimate_noise_kernel(sd.get_noise_model("gaussian-correlated", sigma=8.0,
                                                   kernel=SCAN).sample(x, rng=4), shape=3)
    assert np.abs(est.kernel[[0, 2]]).max() < 0.015
    np.testing.assert_allclose(est.kernel[1], SCAN[0], atol=0.03)


def test_white_part_after_the_kernel_is_estimated_or_taken_as_given():
    nm = sd.get_noise_model("poisson-correlated+gaussian", lam=0.5, sigma=5.0)
    y = nm.sample(ramp(), rng=5)
    est = estimate_noise_kernel(y, white=None)
    assert not est.white_given
    assert est.white_variance == pytest.approx(25.0, abs=4 * est.white_stderr + 1.0)
    # separating the white part costs precision (centre +/- 0.02 on 256x256): in errors
    assert np.all(np.abs(est.kernel - PAPER_KERNEL) < 4 * est.stderr + 0.005)
    np.testing.assert_allclose(est.kernel, PAPER_KERNEL, atol=0.06)
    # ignoring the white part puts it into the kernel: sharper than the truth
    ignored = estimate_noise_kernel(y, white=0.0)
    assert ignored.kernel[1, 1] > PAPER_KERNEL[1][1] + 0.03
    given = estimate_noise_kernel(y, white=25.0)
    assert given.white_given and given.white_stderr == 0.0
    np.testing.assert_allclose(given.kernel, PAPER_KERNEL, atol=0.02)


def test_repeated_frames_give_the_kernel_free_of_the_scene():
    nm = sd.get_noise_model("gaussian-correlated", sigma=6.0, kernel=CROSS)
    x = blobs(128, peak=3000.0)  # strong structure: it cancels in frame differences
    frames = np.stack([nm.sample(x, rng=10 + i) for i in range(12)])
    est = estimate_noise_kernel(frames, frames_axis=0)
    assert est.method == "photon-transfer"
    np.testing.assert_allclose(est.kernel, CROSS, atol=0.01)
    # a one-sided kernel (afterglow along the scan) has no symmetric 1x3 kernel with its
    # covariance: the fit says so, and a wider kernel fits it
    onesided = sd.get_noise_model("gaussian-correlated", sigma=6.0, kernel=((0.0, 0.6, 0.4),))
    frames = np.stack([onesided.sample(x, rng=30 + i) for i in range(12)])
    narrow = estimate_noise_kernel(frames, frames_axis=0, shape=(1, 3))
    wide = estimate_noise_kernel(frames, frames_axis=0, shape=(1, 7))
    assert narrow.chi2 > 4 and any("larger shape" in n for n in narrow.notes)
    assert wide.chi2 < narrow.chi2 / 4


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shape": 2}, "odd"),
    ({"shape": (3, 4)}, "odd"),
    ({"shape": 1}, "white noise"),
    ({"shape": "big"}, "odd kernel size"),
    ({"shape": 9}, "up to 7x7"),
    ({"white": -1.0}, "white must be a variance >= 0"),
    ({"max_pixels": 10}, "max_pixels must be >= 65536"),
])
def test_bad_arguments_are_named(kwargs, match):
    y = np.random.default_rng(0).normal(100, 5, (128, 128))
    with pytest.raises(ValueError, match=match):
        estimate_noise_kernel(y, **kwargs)


def test_too_few_usable_pixels_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 frames|at least 3 frames"):
        estimate_noise_kernel(np.zeros((2, 64, 64)), frames_axis=0)
    flat = np.full((64, 64), 255, np.uint8)  # all at the limit
    with pytest.raises(ValueError, match="too few|too flat|fewer"):
        estimate_noise_kernel(flat)


def test_estimate_noise_estimates_a_correlated_models_kernel():
    # the truth is not the paper's kernel: with the paper's (the old behaviour) sigma was
    # off by the ratio of the kernels' variances
    nm = sd.get_noise_model("gaussian-correlated", sigma=8.0, kernel=CROSS)
    y = nm.sample(blobs(seed=2), rng=6)
    est = sd.estimate_noise(y, "gaussian-correlated")
    assert "kernel" in est.estimated and "kernel" not in est.given
    assert isinstance(est.kernel, NoiseKernel)
    np.testing.assert_allclose(est.noise_model.kernel, CROSS, atol=0.02)
    assert est.params["sigma"] == pytest.approx(8.0, rel=0.06)
    assert abs(est.params["sigma"] - 8.0) < 4 * est.stderr["sigma"]
    old = sd.estimate_noise(y, "gaussian-correlated", kernel=PAPER_KERNEL)
    assert old.kernel is None and "kernel" in old.given
    assert abs(old.params["sigma"] / 8.0 - 1) > 0.15
    # the kernel's uncertainty is in the other parameters' errors
    fixed = sd.estimate_noise(y, "gaussian-correlated", kernel=est.noise_model.kernel)
    assert est.stderr["sigma"] > fixed.stderr["sigma"]
    text = est.summary()
    assert "noise correlation kernel 3x3" in text and "sigma" in text
    json.dumps(est.to_dict())


def test_estimate_noise_fits_the_white_part_of_a_mixture_beside_the_kernel():
    nm = sd.get_noise_model("gamma-correlated+gaussian", alpha=4.0, sigma=5.0, kernel=CROSS)
    y = nm.sample(ramp(), rng=7)
    est = sd.estimate_noise(y, "gamma-correlated+gaussian")
    assert not est.kernel.white_given  # sigma is estimated, so the white part is free
    np.testing.assert_allclose(est.noise_model.kernel, CROSS, atol=0.02)
    assert est.params["sigma"] == pytest.approx(5.0, rel=0.1)
    assert est.params["alpha"] == pytest.approx(4.0, rel=0.15)
    given = sd.estimate_noise(y, "gamma-correlated+gaussian", sigma=5.0)
    assert given.kernel.white_given and given.kernel.white_variance == pytest.approx(25.0)


def test_estimate_noise_kernel_shape_and_frames():
    x = ramp(128)
    nm = sd.get_noise_model("gaussian-correlated", sigma=6.0, kernel=SCAN)
    est = sd.estimate_noise(nm.sample(ramp(), rng=8), "gaussian-correlated", kernel_shape=(1, 3))
    assert np.shape(est.noise_model.kernel) == (1, 3)
    np.testing.assert_allclose(est.noise_model.kernel, SCAN, atol=0.02)
    frames = np.stack([nm.sample(x, rng=40 + i) for i in range(10)])
    est = sd.estimate_noise(frames, "gaussian-correlated", frames_axis=0, kernel_shape=(1, 3))
    assert est.kernel.method == "photon-transfer"
    assert est.params["sigma"] == pytest.approx(6.0, rel=0.05)
    with pytest.raises(ValueError, match="has no kernel"):
        sd.estimate_noise(frames[0], "gaussian", kernel_shape=3)
    with pytest.raises(ValueError, match="has its kernel given"):
        sd.estimate_noise(frames[0], "gaussian-correlated", kernel=SCAN, kernel_shape=3)


def test_registry_lists_the_kernel_as_estimable_and_blind_selection_skips_it():
    for name in ("gaussian-correlated", "poisson-correlated", "rayleigh-correlated+gaussian",
                 "gaussian-signal-correlated"):
        nm = sd.get_noise_model(name)
        assert "kernel" in nm.estimable
    assert sd.get_noise_model("poisson-correlated+gaussian").white_params == ("sigma",)
    assert sd.get_noise_model("gaussian-correlated").white_params == ("white_sigma",)
    assert sd.get_noise_model("poisson-correlated").white_params == ()


def test_a_kernel_the_correlation_operator_cannot_invert_is_refused(monkeypatch):
    import scoredenoise.estimate_kernel as ek

    def fake_fit(S, n, A, spread, shape, white):
        return np.array([[0.25, 0.5, 0.25]]), np.ones(len(S)), 0.0, 1.0  # H(pi) = 0

    monkeypatch.setattr(ek, "_fit", fake_fit)
    y = sd.get_noise_model("gaussian", sigma=5.0).sample(ramp(128), rng=0)
    with pytest.raises(NoiseModelError, match="not usable.*not stably invertible"):
        estimate_noise_kernel(y, shape=(1, 3))


@pytest.mark.parametrize("name,params", [
    ("gaussian-correlated", {"sigma": 20.0}),
    ("poisson-correlated", {"lam": 0.5}),
    ("gamma-correlated+gaussian", {"alpha": 20.0, "sigma": 5.0}),
    ("poisson-correlated+gaussian", {"lam": 0.5, "sigma": 5.0}),
    ("rayleigh-correlated+gaussian", {"rayleigh_sigma": 0.3, "sigma": 5.0}),
])
def test_correlated_models_with_their_kernel_estimated(name, params):
    """The scene of tests/test_estimate.py's known-kernel cases: not knowing the kernel
    costs precision, which the stated errors carry."""
    y = sd.get_noise_model(name, **params).sample(10 + _scene(384, peak=300.0), rng=4)
    est = sd.estimate_noise(y, name)
    assert set(est.estimated) == set(params) | {"kernel"}
    np.testing.assert_allclose(est.noise_model.kernel, PAPER_KERNEL, atol=0.03)
    for k, v in params.items():
        assert est.params[k] == pytest.approx(v, rel=0.2), k
        assert abs(est.params[k] - v) < 4 * est.stderr[k], k
