"""The public denoise function: units of the result."""


import dask.array as da
import numpy as np
import pytest
import tifffile

import scoredenoise as sd
from scoredenoise.io import read_image
from scoredenoise.model import ScoreModel
from scoredenoise.network import build_network

from .test_model import untrained


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return ScoreModel(build_network("small"), offset=[100.0], scale=[50.0])


@pytest.fixture(scope="module")
def camera_image():
    cam = sd.get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    x = np.linspace(5, 200, 64 * 64).reshape(64, 64)
    return cam, np.asarray(cam.sample(x, rng=0), np.float32)


def test_result_is_in_the_input_units_by_default(model, camera_image):
    cam, y = camera_image
    s = model.score(y)
    data = sd.denoise(y, model, cam, score=s)
    signal = sd.denoise(y, model, cam, score=s, units="signal")
    np.testing.assert_allclose(data - cam.offset, signal, atol=1e-4)
    # the input's units: a raw frame's level, not the signal above the 100 ADU offset
    assert abs(np.median(data) - np.median(y)) < 20
    # models without an offset give the same either way
    g = sd.denoise(y, model, "gaussian", score=s, sigma=10.0)
    np.testing.assert_array_equal(g, sd.denoise(y, model, "gaussian", score=s, sigma=10.0,
                                                units="signal"))


def test_units_per_channel_and_lazily(model, camera_image):
    cam, y = camera_image
    two = np.stack([y, y - 50.0])
    m2 = ScoreModel(build_network("small", channels=2), offset=[100.0, 50.0],
                    scale=[50.0, 50.0])
    cams = [cam, cam.replace(offset=50.0)]
    data = sd.denoise(two, m2, cams, axes="CYX")
    signal = sd.denoise(two, m2, cams, axes="CYX", units="signal")
    np.testing.assert_allclose(data[0] - 100.0, signal[0], atol=1e-4)
    np.testing.assert_allclose(data[1] - 50.0, signal[1], atol=1e-4)
    lazy = sd.denoise(da.from_array(two, chunks=(2, 32, 32)), m2, cams, axes="CYX",
                      units="signal")
    np.testing.assert_allclose(lazy.compute(), signal, atol=1e-3)


def test_units_are_checked(model, camera_image):
    cam, y = camera_image
    with pytest.raises(ValueError, match=r"units must be one of \('input', 'signal'\)"):
        sd.denoise(y, model, cam, units="adu")
    den = ScoreModel(build_network("small"), offset=[0.0], scale=[1.0], kind="denoiser")
    with pytest.raises(ValueError, match="units='signal'.*needs a noise model"):
        sd.denoise(y, den, units="signal")


def test_file_records_its_units(model, camera_image, tmp_path):
    cam, y = camera_image
    a = sd.denoise_to_file(y, tmp_path / "a.tif", model, cam)
    b = sd.denoise_to_file(y, tmp_path / "b.tif", model, cam, units="signal")
    ra, rb = read_image(a.path), read_image(b.path)
    assert ra.extra["scoredenoise"]["units"] == "input"
    assert rb.extra["scoredenoise"]["units"] == "signal"
    offset = ra.extra["scoredenoise"]["noise_model"]["params"]["offset"]
    np.testing.assert_allclose(np.asarray(ra.data) - offset, np.asarray(rb.data), atol=1e-4)


def test_default_axes_are_one_rule_for_every_caller(tmp_path):
    from scoredenoise._axes import default_axes, infer_axes
    # one table whatever the network: a 2D network reads the Z of a stack as planes
    assert [default_axes(n) for n in (2, 3, 4, 5)] == ["YX", "ZYX", "TZYX", "TCZYX"]
    assert [default_axes(n, 3) for n in (3, 4, 5)] == ["ZYX", "TZYX", "TCZYX"]
    assert [infer_axes(n) for n in (2, 3, 4, 5)] == [default_axes(n) for n in (2, 3, 4, 5)]
    with pytest.raises(ValueError, match="a 3D network needs at least 3 dimensions, got 2"):
        default_axes(2, 3)
    with pytest.raises(ValueError, match="cannot infer the axes of a 6-D array; pass axes"):
        default_axes(6)
    # the API, a plain TIFF read from disk and the check agree
    stack = np.zeros((3, 16, 16), np.float32)
    tifffile.imwrite(tmp_path / "plain.tif", stack)
    assert read_image(tmp_path / "plain.tif").axes == default_axes(3)
    assert sd.check_axes(None, 3) == sd.check_axes(None, 3, 3) == default_axes(3)


@pytest.fixture(scope="module")
def conditioned():
    rng = np.random.default_rng(0)
    imgs = [rng.normal(50, 10, (48, 48)).astype(np.float32) for _ in range(2)]
    return sd.train(imgs, preset="small", steps=2, patch_size=16, batch_size=2, seed=0,
                    conditioned=True)


def test_lazy_denoise_uses_the_sigma_a_chosen_for_the_array(conditioned):
    """A dask image is denoised at the sigma_a chosen (or given) for it, as in memory (the
    chunks used to be evaluated at the model's default instead)."""
    y = np.random.default_rng(1).normal(50, 10, (2, 64, 64)).astype(np.float32)
    g = sd.get_noise_model("gaussian", sigma=10.0)
    assert abs(conditioned.sigma_a_default - 0.3) > 0.1
    whole = sd.denoise(y, conditioned, g, axes="ZYX", sigma_a=0.3)
    lazy = sd.denoise(da.from_array(y, chunks=(1, 32, 32)), conditioned, g, axes="ZYX",
                      sigma_a=0.3).compute()
    np.testing.assert_allclose(lazy[:, 8:-8, 8:-8], whole[:, 8:-8, 8:-8], rtol=1e-4,
                               atol=1e-3)
    assert np.abs(sd.denoise(y, conditioned, g, axes="ZYX", sigma_a=0.05) - whole).max() > 0.01


def test_tta_in_memory_lazily_and_to_file(conditioned, tmp_path):
    """tta=True averages the 8 orientations: lazily (chunks with their halo) as in memory,
    to a file (recorded in its metadata), and for direct denoisers too; a score given is
    used as it is."""
    y = np.random.default_rng(2).normal(50, 10, (2, 64, 64)).astype(np.float32)
    g = sd.get_noise_model("gaussian", sigma=10.0)
    plain = sd.denoise(y, conditioned, g, axes="ZYX", sigma_a=0.1, tta=False)
    tta = sd.denoise(y, conditioned, g, axes="ZYX", sigma_a=0.1, tta=True)
    assert np.abs(tta - plain).max() > 1e-3
    # the default, tta="auto", is the model's choice: on for this small network
    assert conditioned.tta_default
    np.testing.assert_array_equal(sd.denoise(y, conditioned, g, axes="ZYX", sigma_a=0.1), tta)
    s = conditioned.score(y, axes="ZYX", sigma_a=0.1, tta=True)
    np.testing.assert_allclose(sd.denoise(y, conditioned, g, axes="ZYX", score=s), tta,
                               rtol=1e-6)
    lazy = sd.denoise(da.from_array(y, chunks=(1, 32, 32)), conditioned, g, axes="ZYX",
                      sigma_a=0.1, tta=True).compute()
    np.testing.assert_allclose(lazy[:, 8:-8, 8:-8], tta[:, 8:-8, 8:-8], rtol=1e-4, atol=1e-3)
    res = sd.denoise_to_file(y, tmp_path / "t.tif", conditioned, g, axes="ZYX", sigma_a=0.1,
                             tta=True, chunks={"Y": 32, "X": 32})
    out = read_image(res.path)
    np.testing.assert_allclose(np.asarray(out.data)[:, 8:-8, 8:-8], tta[:, 8:-8, 8:-8],
                               rtol=1e-4, atol=1e-3)
    assert out.extra["scoredenoise"]["tta"] is True
    den = untrained(kind="denoiser")
    np.testing.assert_allclose(sd.denoise(y[0], den, tta=True), den.predict(y[0], tta=True))
