"""The Denoise step's uncertainty scopes (_napari/_uncertainty.py) in a real viewer:
posterior std maps and posterior samples as layers."""



import numpy as np

import scoredenoise as sd

from ..test_model import untrained
from ._helpers import _dock, _press


def test_posterior_std_layer_of_the_plane_shown(make_napari_viewer, qtbot, monkeypatch):
    from napari.utils import notifications

    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = make_napari_viewer()
    y = np.random.default_rng(0).normal(60, 10, size=(3, 48, 48)).astype(np.float32)
    ly = viewer.add_image(y, name="stack", scale=(2.0, 0.5, 0.5))
    train, noise, den = _dock(viewer)
    train.session.set_model(untrained(), "test")
    noise.set_params("gaussian", sigma=10.0)
    den.layer.value = den.layer.get_choice("stack")
    viewer.dims.set_current_step(0, 1)
    _press(den, "posterior std of the plane shown")
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    out = viewer.layers["stack posterior std"]
    np.testing.assert_array_equal(out.scale, ly.scale)
    assert not np.any(out.data[0]) and not np.any(out.data[2])  # only the plane shown
    expect = sd.posterior_std(y[1], train.session.model, noise.session.noise_model, rng=0)
    np.testing.assert_allclose(out.data[1], expect, rtol=1e-5)
    assert out.metadata["scoredenoise"]["kind"] == "posterior std"
    # not a training layer; a correlated noise model gets its map too
    assert "stack posterior std" not in train.selected_names() + [
        train.layers.native.item(i).text() for i in range(train.layers.native.count())]
    noise.set_params("gaussian-correlated")
    _press(den, "posterior std of the plane shown")
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    expect = sd.posterior_std(y[1], train.session.model, noise.session.noise_model, rng=0)
    np.testing.assert_allclose(out.data[1], expect, rtol=1e-5)
    assert out.metadata["scoredenoise"]["noise_model_chosen"]["name"] == "gaussian-correlated"
    # a failure says why and leaves no empty layer

    def fails(*a, **k):
        raise ValueError("posterior_std takes one 2-D plane (Y, X) so far")

    monkeypatch.setattr(sd, "posterior_std", fails)
    viewer.layers.remove("stack posterior std")
    _press(den, "posterior std of the plane shown")
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    assert "takes one 2-D plane" in den.status.value
    assert "stack posterior std" not in viewer.layers


def test_posterior_std_of_the_whole_layer_with_cancel(make_napari_viewer, qtbot, monkeypatch):
    """Every plane's map, each shown as it is done; a Cancel keeps the planes done."""
    viewer = make_napari_viewer()
    y = np.random.default_rng(0).normal(60, 10, size=(3, 40, 40)).astype(np.float32)
    viewer.add_image(y, name="stack", scale=(2.0, 0.5, 0.5))
    train, noise, den = _dock(viewer)
    train.session.set_model(untrained(), "test")
    noise.set_params("gaussian", sigma=10.0)
    den.layer.value = den.layer.get_choice("stack")
    _press(den, "posterior std of the whole layer")
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    out = viewer.layers["stack posterior std"]
    for k in range(3):
        expect = sd.posterior_std(y[k], train.session.model, noise.session.noise_model, rng=0)
        np.testing.assert_allclose(out.data[k], expect, rtol=1e-5)
    assert "3 planes" in den.status.value
    # Cancel during the second plane: the first stays, the rest are not computed
    out.data[:] = 0
    real = sd.posterior_std
    calls = []

    def slow_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            den._cancel.set()
        return real(*a, **k)

    monkeypatch.setattr(sd, "posterior_std", slow_second)
    _press(den, "posterior std of the whole layer")
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    qtbot.waitUntil(lambda: bool(np.any(out.data[1])), timeout=10_000)
    assert np.any(out.data[0]) and not np.any(out.data[2]) and len(calls) == 2
    assert "cancel" in den.status.value.lower()


def test_posterior_samples_layers(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    from napari.utils import notifications
    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    y = rng.normal(60, 10, size=(3, 32, 32)).astype(np.float32)
    ly = viewer.add_image(y, name="stack", scale=(2.0, 0.5, 0.5))
    train, noise, den = _dock(viewer)
    den.layer.value = den.layer.get_choice("stack")
    viewer.dims.set_current_step(0, 1)
    noise.set_params("gaussian", sigma=10.0)
    # no prior: the reason, not a crash
    _press(den, "posterior samples of the plane shown (needs a prior)")
    assert "need a prior" in errors[-1] and not den.running
    assert den.prior_row.native.isVisibleTo(den.native)
    # a self-supervised model is refused as a prior
    untrained().save(tmp_path / "m.sdmodel")
    assert den.load_prior(tmp_path / "m.sdmodel") is None and "objective='prior'" in errors[-1]
    clean = [rng.normal(60, 5, size=(32, 32)).astype(np.float32) for _ in range(2)]
    prior = sd.train(clean, objective="prior", preset="small", steps=2, patch_size=16,
                     batch_size=2, seed=0)
    assert den.load_prior(prior.save(tmp_path / "p.sdmodel")) is not None
    den.n_samples.value = 3
    _press(den, "posterior samples of the plane shown (needs a prior)")
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    xs = viewer.layers["stack samples"]
    assert xs.data.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(xs.scale, (1.0, 2.0, 0.5, 0.5))
    assert not np.any(xs.data[:, 0]) and not np.any(xs.data[:, 2])  # only the plane shown
    assert not np.allclose(xs.data[0, 1], xs.data[1, 1])  # the samples differ
    spread = viewer.layers["stack samples spread"]
    np.testing.assert_array_equal(spread.scale, ly.scale)
    np.testing.assert_allclose(spread.data[1], xs.data[:, 1].std(axis=0), rtol=1e-5)
    assert xs.metadata["scoredenoise"]["kind"] == "posterior samples"
    # samples need the gaussian model's sigma
    noise.set_params("poisson-gaussian")
    _press(den, "posterior samples of the plane shown (needs a prior)")
    assert "need the gaussian noise model" in errors[-1]
    # ... unless the prior was trained for a camera, which then sets the noise
    cam = sd.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5, read_noise=1.0)
    cam_prior = sd.train_prior(clean, noise_model=cam, preset="small", steps=2,
                               patch_size=16, batch_size=2, seed=0)
    assert den.load_prior(cam_prior.save(tmp_path / "cam.sdmodel")) is not None
    n_err = len(errors)
    _press(den, "posterior samples of the plane shown (needs a prior)")
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    assert len(errors) == n_err
    xs = viewer.layers["stack samples"]
    assert xs.metadata["scoredenoise"]["camera"] == cam.to_dict()
    assert float(xs.data[:, 1].min()) >= 3.5  # ADU, never below the camera's offset
