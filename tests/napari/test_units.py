"""Training in photo-electrons per image from the plugin (Train widget's "units"), and the
Denoise step binding each layer to its own photon map, in a real viewer."""

import numpy as np
import pytest

import scoredenoise as sd

from ._helpers import _dock, _press, _train


def test_photon_units_from_the_train_widget_to_a_live_resolve(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    yy, xx = np.mgrid[:96, :96]
    counts = 3 + 2 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    rng = np.random.default_rng(0)
    for name, g in (("dim camera", 2.0), ("bright file", 20.0)):  # gains 10-fold apart
        cam = sd.get_noise_model("poisson-gaussian", gain=g, offset=10.0, read_noise=0.5 * g)
        stack = np.stack([cam.sample(counts * g, rng=rng) for _ in range(2)])
        viewer.add_image(stack.astype(np.float32), name=name, scale=(1.0, 0.3, 0.3))
    train, noise, den = _dock(viewer)
    train.select(["dim camera", "bright file"])
    train.preset.value = "small"
    train.steps.value = 20
    train.patch.value = 32
    train.units.value = "photons"
    assert train.config().units == "photons"
    _train(qtbot, train, 20)
    model = train.session.model
    assert model.units == "photons"
    assert [d["photon_map"]["gain"][0] for d in model.meta["data"]] == [
        pytest.approx(2.0, rel=0.2), pytest.approx(20.0, rel=0.2)]

    noise.set_params("poisson-gaussian", gain=20.0, offset=10.0, read_noise=10.0)
    den.layer.value = den.layer.get_choice("bright file")
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    out = viewer.layers["bright file denoised"]
    md = out.metadata["scoredenoise"]
    # the layer's own map (from its own estimate), recorded with the result
    assert md["photon_map"]["gain"][0] == pytest.approx(20.0, rel=0.2)
    np.testing.assert_array_equal(out.scale, viewer.layers["bright file"].scale)
    shown = out.data[0].copy()
    assert np.isfinite(shown).all() and np.any(shown)
    # a new parameter re-solves from the cached score: no network pass, the same map
    calls = []
    model.network.head.register_forward_hook(lambda *a: calls.append(1))
    noise.set_params(read_noise=30.0)
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    assert not calls and not np.allclose(out.data[0], shown)
    assert out.metadata["scoredenoise"]["photon_map"] == md["photon_map"]
    _press(den, "whole layer")
    qtbot.waitUntil(lambda: den.denoise_btn.enabled, timeout=120_000)
    assert all(np.any(out.data[i]) for i in range(2))
