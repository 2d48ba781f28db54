"""Each image in its own photo-electrons (``train(..., units="photons")``): the map of an
image, training on mapped images, and every inference path mapping the image it is given."""

import dataclasses
import json

import dask.array as da
import numpy as np
import pytest
import tifffile

import scoredenoise as sd
from scoredenoise.model import model_from_bytes
from scoredenoise.training import photon_extra_noise
from scoredenoise.units import PhotonMap, estimate_photon_map, to_photons

GAINS = ((2.0, 100.0), (20.0, 10.0))  # (gain ADU/e-, offset ADU): a 10-fold spread


def _counts():
    yy, xx = np.mgrid[:96, :96]
    c = 3 + 2 * np.sin(xx / 7.0) * np.cos(yy / 9.0) + (xx > 48)  # photo-electrons
    c[:, 80:] = 0.0  # a dark band: the estimates find the offset (and so the read noise)
    return c


def _images(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for g, o in GAINS:
        cam = sd.get_noise_model("poisson-gaussian", gain=g, offset=o, read_noise=0.3 * g)
        out.append(cam.sample(_counts() * g, rng=rng).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def photon_model():
    return sd.train(_images(), units="photons", steps=30, seed=0, preset="small")


def _camera(pm: PhotonMap, read_noise=10.0):
    return sd.get_noise_model("poisson-gaussian", gain=pm.gain[0], offset=pm.offset[0],
                              read_noise=read_noise)


def test_photon_map_validates_its_numbers():
    assert PhotonMap(offset=[1], gain=[2.5]).gain_of(3) == 2.5
    with pytest.raises(ValueError, match=r"gain must be > 0 .* got \(0.0,\)"):
        PhotonMap(offset=(1.0,), gain=(0.0,))
    with pytest.raises(ValueError, match="one offset and one gain per channel"):
        PhotonMap(offset=(1.0, 2.0), gain=(1.0,))


def test_estimate_photon_map_recovers_a_camera():
    rng = np.random.default_rng(1)
    cam = sd.get_noise_model("poisson-gaussian", gain=4.0, offset=200.0, read_noise=3.0)
    x = np.tile(np.linspace(0, 2000, 256), (256, 1))
    y = cam.sample(x, rng=rng)
    pm = estimate_photon_map(y, axes="YX")
    assert pm.gain[0] == pytest.approx(4.0, rel=0.1)
    # the offset is the estimate's (from one image only g * offset - read noise^2 is known)
    assert pm.offset[0] == sd.estimate_noise(y, "poisson-gaussian").noise_model.offset


def test_to_photons_per_channel_numpy_and_dask_without_touching_the_input():
    y = np.stack([np.full((4, 4), 110.0), np.full((4, 4), 50.0)]).astype(np.float32)
    before = y.copy()
    pm = PhotonMap(offset=(10.0, 0.0), gain=(2.0, 5.0))
    u = to_photons(y, pm, axes="CYX")
    np.testing.assert_allclose(u[0], 50.0)
    np.testing.assert_allclose(u[1], 10.0)
    np.testing.assert_array_equal(y, before)
    lazy = to_photons(da.from_array(y, chunks=2), pm, axes="CYX")
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), u)
    with pytest.raises(ValueError, match="2 channels for an image without a C axis"):
        to_photons(y[0], pm, axes="YX")


def test_training_maps_each_image_by_its_own_estimate(photon_model):
    m = photon_model
    assert m.units == "photons" and m.conditioned
    gains = [d["photon_map"]["gain"][0] for d in m.meta["data"]]
    assert gains[0] == pytest.approx(2.0, rel=0.15) and gains[1] == pytest.approx(20, rel=0.2)
    # the normalisation is that of photo-electron counts (a few tens), not of the
    # gain-20 image's ADU (hundreds): the images were mapped before training
    assert m.scale[0] < 40
    data_units = sd.train(_images(), steps=1, seed=0, preset="small", units="data")
    assert data_units.units == "data" and data_units.scale[0] > 100
    # the training noise: half a photon step in all, read noise (photo-electrons) included
    est = [sd.estimate_noise(y, "poisson-gaussian").noise_model for y in _images()]
    read = float(np.median([e.read_noise / e.gain for e in est]))
    assert m.extra_noise == pytest.approx(photon_extra_noise(read))
    assert photon_extra_noise(0.3) == pytest.approx(0.4) and photon_extra_noise(0.7) == 0


def test_photo_electrons_train_unweighted_without_added_noise():
    """Images whose read noise already spans half a photon get no training noise in
    photo-electrons; they are still counts, so the loss is not weighted by 1 / sigma_a^2
    (on W2S, read noise 0.6 photo-electrons, that weight was what the map had changed)."""
    rng = np.random.default_rng(3)
    ims = []
    for g, o in GAINS:
        cam = sd.get_noise_model("poisson-gaussian", gain=g, offset=o, read_noise=0.8 * g)
        ims.append(cam.sample(_counts() * g, rng=rng).astype(np.float32))
    m = sd.train(ims, units="photons", steps=2, seed=0, preset="small")
    assert m.extra_noise == 0.0
    assert m.meta["training"]["sigma_weighting"] == "none"


def test_denoise_equals_solving_the_mapped_image_and_mapping_back(photon_model):
    """The library's path (the image mapped by its own estimate, solved with the noise model
    mapped alike, the result mapped back) equals doing it by hand with the same network."""
    y = _images(seed=3)[1]
    pm = estimate_photon_map(y, axes="YX")
    x = sd.denoise(y, photon_model, _camera(pm), sigma_a=0.05)
    by_hand = dataclasses.replace(photon_model, meta={**photon_model.meta, "units": "data"})
    u = to_photons(y, pm, axes="YX")
    cam_u = sd.get_noise_model("poisson-gaussian", gain=1.0, offset=0.0,
                               read_noise=10.0 / pm.gain[0])
    xu = sd.denoise(u, by_hand, cam_u, sigma_a=0.05)
    np.testing.assert_allclose(x, xu * pm.gain[0] + pm.offset[0], atol=1e-5 * np.ptp(y))
    # and it is not the model used in the data's units
    unmapped = sd.denoise(y, by_hand, _camera(pm), sigma_a=0.05)
    assert np.abs(unmapped - x).max() > 0.05 * np.ptp(y)


def test_the_score_carries_the_map_to_every_solve(photon_model):
    y = _images(seed=4)[1]
    pm = estimate_photon_map(y, axes="YX")
    s = photon_model.score(y, noise_model=_camera(pm))
    assert isinstance(s.sigma_a, sd.SigmaA) and s.sigma_a.photon_map == pm
    x = sd.denoise(y, photon_model, _camera(pm), score=s)
    np.testing.assert_array_equal(x, sd.denoise(y, photon_model, _camera(pm)))
    # another noise model on the same score: no network pass, the same map
    other = sd.denoise(y, photon_model, _camera(pm, read_noise=30.0), score=s)
    assert np.abs(other - x).max() > 0
    # a lazy image: chunks bound to the whole image's map, equal to the whole-image result
    lazy = sd.denoise(da.from_array(y, chunks=48), photon_model, _camera(pm))
    np.testing.assert_allclose(lazy.compute(), x, atol=1e-4 * np.ptp(y))
    with pytest.raises(ValueError, match="needs the image's photon map"):
        sd.denoise(y, photon_model, _camera(pm), score=np.asarray(s), sigma_a=0.05)


def test_to_file_binds_once_per_file_and_records_the_map(photon_model, tmp_path):
    y = _images(seed=5)[1]
    src, out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, y)
    pm = estimate_photon_map(y, axes="YX")
    sd.denoise_to_file(src, out, photon_model, _camera(pm), chunks=(48, 48), sigma_a=0.05)
    expect = sd.denoise(y, photon_model, _camera(pm), sigma_a=0.05)
    np.testing.assert_allclose(tifffile.imread(out), expect, atol=1e-4 * np.ptp(y))
    with tifffile.TiffFile(out) as f:
        md = json.loads(f.pages[0].description)
    assert md["scoredenoise"]["photon_map"]["gain"] == pytest.approx(list(pm.gain))


def test_bind_gives_a_model_of_the_image_units(photon_model, tmp_path):
    y = _images(seed=6)[1]
    bound = photon_model.bind(y)
    pm = bound.photon_map
    assert bound.units == "data" and pm.gain[0] == pytest.approx(20, rel=0.2)
    np.testing.assert_allclose(bound.scale, pm.gain[0] * photon_model.scale)
    assert bound.smoothing_sigma(0, 0.05) == pytest.approx(
        photon_model.smoothing_sigma(0, sd.SigmaA(0.05, photon_map=pm)))
    np.testing.assert_allclose(bound.predict(y, sigma_a=0.05),
                               photon_model.predict(y, sigma_a=0.05), rtol=1e-6)
    with pytest.raises(ValueError, match="needs the image's photon map"):
        photon_model.smoothing_sigma(0, 0.05)
    with pytest.raises(ValueError, match=r"photon map .* cannot be estimated: .*give one"):
        photon_model.score(np.ones((32, 32), np.float32))  # no noise to estimate it from
    bound.save(tmp_path / "bound.sdmodel")  # a model of this image's units, map recorded
    again = sd.load_model(tmp_path / "bound.sdmodel")
    assert again.units == "data" and again.photon_map == pm
    np.testing.assert_array_equal(again.predict(y, sigma_a=0.05), bound.predict(y, sigma_a=0.05))
    photon_model.save(tmp_path / "m.sdmodel")
    assert sd.load_model(tmp_path / "m.sdmodel").units == "photons"
    data_units = sd.train(_images(), steps=1, preset="small", units="data")
    assert data_units.bind(y) is data_units  # a model of the data's units: as it is


def test_posterior_std_in_the_image_units(photon_model):
    y = _images(seed=7)[1]
    pm = estimate_photon_map(y, axes="YX")
    std = sd.posterior_std(y, photon_model, _camera(pm), sigma_a=0.05, rng=0)
    ref = sd.posterior_std(y, photon_model.bind(y), _camera(pm), sigma_a=0.05, rng=0)
    np.testing.assert_allclose(std, ref, rtol=1e-5)
    assert np.isfinite(std).all() and std.mean() > 0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="units must be 'auto', 'data' or 'photons', got 'adu'"):
        sd.TrainConfig(units="adu")
    with pytest.raises(ValueError, match="objective 'neighbor2neighbor' trains in the data"):
        sd.TrainConfig(units="photons", objective="neighbor2neighbor")
    with pytest.raises(ValueError, match="needs a sigma-conditioned network"):
        sd.TrainConfig(units="photons", conditioned=False)
    data_model = sd.train(_images(), steps=1, preset="small", units="data")
    with pytest.raises(ValueError, match="trained with units='data'; pass units='data'"):
        sd.train(_images(), steps=1, units="photons", model=data_model)


def test_channels_each_have_their_own_map():
    """A two-channel image whose detectors have gains 10-fold apart: one map per channel in
    training and at inference, and the training noise in each channel's units."""
    rng = np.random.default_rng(8)
    chans = []
    for g in (2.0, 20.0):
        cam = sd.get_noise_model("poisson-gaussian", gain=g, offset=10.0, read_noise=0.3 * g)
        chans.append(cam.sample(_counts() * g, rng=rng))
    y = np.stack(chans).astype(np.float32)
    m = sd.train(y, axes="CYX", units="photons", steps=2, preset="small", seed=0)
    gains = m.meta["data"][0]["photon_map"]["gain"]
    assert gains == [pytest.approx(2.0, rel=0.2), pytest.approx(20.0, rel=0.2)]
    bound = m.bind(y, axes="CYX")
    assert bound.photon_map.channels == 2
    again = model_from_bytes(bound.to_bytes())  # per-channel training noise in the file
    np.testing.assert_allclose(again.extra_noise, bound.extra_noise)
    np.testing.assert_allclose(bound.extra_noise, np.asarray(bound.photon_map.gain) *
                               m.extra_noise)
    assert bound.smoothing_sigma(1, 0.05) > 5 * bound.smoothing_sigma(0, 0.05)
    ests = [e.noise_model for e in sd.estimate_noise(y, "poisson-gaussian", axes="CYX")]
    x = sd.denoise(y, m, ests, axes="CYX", sigma_a=0.05)
    assert x.shape == y.shape and np.isfinite(x).all()
    with pytest.raises(ValueError, match="photon map has 1 channel"):
        m.bind(y, axes="CYX", photon_map=PhotonMap(offset=(0.0,), gain=(1.0,)))


def test_auto_units_photons_for_photon_starved_counts_only():
    """``units="auto"`` (the default): photons where the score network is conditioned for
    photon-starved single-channel counts; the data's units for brighter counts, noise that
    is not photon counts, the related methods and a network forced unconditioned."""
    starved = sd.train(_images(), steps=1, preset="small")
    assert starved.units == "photons" and starved.meta["training"]["units"] == "photons"
    assert starved.train_config.units == "auto"
    rng = np.random.default_rng(9)
    bright = [(rng.poisson(_counts() * 20 + 20) * 4 + 100).astype(np.float32)]
    assert sd.train(bright, steps=1, preset="small").units == "data"
    gauss = [(rng.normal(0, 5, (96, 96)) + 50 * _counts()).astype(np.float32)]
    assert sd.train(gauss, steps=1, preset="small").units == "data"
    assert sd.train(_images(), steps=1, preset="small", conditioned=False).units == "data"
    n2n = sd.train(_images(), steps=1, preset="small", objective="neighbor2neighbor")
    assert n2n.units == "data"
    # counts by the sampler's quick look, but an image whose own estimate finds no
    # Poisson-Gaussian noise: no map, so the data's units (photons given: the error)
    flat = [rng.normal(0.5, 0.1, (64, 64)).astype(np.float32) for _ in range(2)]
    kw = dict(steps=1, preset="small", patch_size=32, conditioned=True)
    assert sd.train(flat, **kw).units == "data"
    with pytest.raises(ValueError,
                       match=r"training image 0: poisson-gaussian: the variance.*units='data'"):
        sd.train(flat, units="photons", **kw)
    # continuing a model keeps its units
    assert sd.train(_images(), steps=1, model=starved).units == "photons"


def test_select_sigma_a_chooses_in_the_image_units(photon_model):
    y = _images(seed=10)[1]
    pm = estimate_photon_map(y, axes="YX")
    sig = sd.select_sigma_a(photon_model, y, _camera(pm), grid=3)
    assert sig.photon_map == pm
    ref = sd.select_sigma_a(photon_model.bind(y), y, _camera(pm), grid=3)
    assert float(sig) == float(ref) and sig.factor == ref.factor
