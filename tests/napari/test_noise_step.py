"""The Noise model step (_napari/_noise.py) in a real viewer: estimate, models, fields."""


import threading

import numpy as np
import pytest

import scoredenoise as sd


def test_estimate_button_fills_the_fields_and_plots_the_fit(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    cam = sd.get_noise_model("poisson-gaussian", gain=2.5, offset=0.0, read_noise=4.0)
    x = np.tile(np.linspace(0.0, 1500.0, 512), (512, 1))  # 512^2: gain to about 1 %
    viewer.add_image(cam.sample(x, rng=1).astype(np.float32), name="camera")
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    noise.set_params("poisson-gaussian")
    noise.layer.value = noise.layer.get_choice("camera")
    with qtbot.waitSignal(noise.session.noise_changed, timeout=60_000):
        noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    assert noise.fields["gain"].value == pytest.approx(2.5, rel=0.05)
    assert noise.session.noise_model.gain == pytest.approx(2.5, rel=0.05)
    assert len(noise.plot.points) >= 10 and len(noise.plot.curve) == 64
    ax = noise.plot.ax  # float data: the data's own units, on labelled axes
    assert ax.get_xlabel() == "mean (data units)"
    assert ax.get_ylabel() == "variance (data units²)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["measured", "noise model"]
    assert "gain" in noise.fit_text.value
    # white noise declared: no correlation measured, and the note says so
    assert noise.white.native.isVisibleTo(noise.native)
    noise.white.value = True
    noise.estimate_result = None
    noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    assert "noise assumed white" in noise.fit_text.value
    # an RGB layer gets a clear message and changes nothing
    viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="rgb", rgb=True)
    noise.layer.value = noise.layer.get_choice("rgb")
    noise.estimate()
    assert noise.fields["gain"].value == pytest.approx(2.5, rel=0.05)
    noise.set_params("poisson-correlated+gaussian")  # its kernel gives the correlation
    assert not noise.white.native.isVisibleTo(noise.native)


def test_estimate_button_fills_a_correlated_models_kernel(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    cross = ((0.0, 0.1, 0.0), (0.1, 0.6, 0.1), (0.0, 0.1, 0.0))
    nm = sd.get_noise_model("gaussian-correlated", sigma=8.0, kernel=cross)
    x = np.tile(np.linspace(20.0, 200.0, 384), (384, 1))
    viewer.add_image(nm.sample(x, rng=2).astype(np.float32), name="scanner")
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    noise.set_params("gaussian-correlated")
    assert noise.kernel_label.value.startswith("paper 3x3")
    noise.layer.value = noise.layer.get_choice("scanner")
    with qtbot.waitSignal(noise.session.noise_changed, timeout=60_000):
        noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    # the estimated kernel is in the session's model (what Denoise solves with) and shown
    np.testing.assert_allclose(noise.session.noise_model.kernel, cross, atol=0.03)
    assert noise.session.noise_model.sigma == pytest.approx(8.0, rel=0.1)
    assert noise.kernel_label.value.startswith("estimated 3x3")
    assert "noise correlation kernel" in noise.fit_text.value
    noise.fields["sigma"].value = 9.0  # tuning a field keeps the kernel
    np.testing.assert_allclose(noise.session.noise_model.kernel, cross, atol=0.03)
    noise.set_params(kernel=None)  # the "Eq. 30" button: back to the paper's kernel
    np.testing.assert_allclose(noise.session.noise_model.kernel, sd.noise.PAPER_KERNEL)
    assert noise.kernel_label.value.startswith("paper 3x3")


def test_exact_solve_box_only_for_count_mixtures(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    noise.set_params("poisson-gaussian", gain=3.7, offset=3.5, read_noise=1.0)
    assert noise.exact.native.isVisibleTo(noise.native) and not noise.session.noise_model.exact
    noise.exact.value = True
    nm = noise.session.noise_model
    assert nm.exact and nm.gain == pytest.approx(3.7)
    noise.fields["gain"].value = 4.0  # the choice stays while tuning
    assert noise.session.noise_model.exact and noise.session.noise_model.gain == 4.0
    noise.set_params("gamma+gaussian")  # Algorithm 5 only: no box, no error
    assert not noise.exact.native.isVisibleTo(noise.native) and noise.error.value == ""
    assert not getattr(noise.session.noise_model, "exact", False)


def test_estimate_shows_progress_and_cancels(make_napari_viewer, qtbot, monkeypatch):
    """The Estimate button's bar counts the planes of a stack; Cancel stops the estimate
    (a message, the fields keep their values) and the button works again."""
    from napari.utils import notifications

    infos = []
    monkeypatch.setattr(notifications, "show_info", infos.append)
    viewer = make_napari_viewer(show=True)
    cam = sd.get_noise_model("poisson-gaussian", gain=2.5, offset=0.0, read_noise=4.0)
    x = np.tile(np.linspace(0.0, 1500.0, 192), (192, 1))
    viewer.add_image(np.stack([cam.sample(x, rng=i) for i in range(6)]).astype(np.float32),
                     name="stack")
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    noise.set_params("poisson-gaussian", gain=1.0)
    noise.layer.value = noise.layer.get_choice("stack")
    real, first = sd.estimate_noise, threading.Event()

    def pause_after_first_plane(*args, progress, **kw):  # until Cancel is clicked
        def wrapped(done, total):
            if done == 1:
                first.set()
                noise._cancel.wait(30)
            return progress(done, total)
        return real(*args, progress=wrapped, **kw)

    monkeypatch.setattr(sd, "estimate_noise", pause_after_first_plane)
    noise.estimate()
    assert noise.cancel_btn.enabled and not noise.estimate_btn.enabled
    qtbot.waitUntil(first.is_set, timeout=60_000)
    noise.cancel_btn.native.click()
    qtbot.waitUntil(lambda: noise.estimate_btn.enabled, timeout=60_000)
    assert infos and "cancelled after 1 of 6" in infos[-1]
    assert noise.estimate_result is None and noise.fields["gain"].value == 1.0
    assert not noise.cancel_btn.enabled
    monkeypatch.setattr(sd, "estimate_noise", real)
    with qtbot.waitSignal(noise.session.noise_changed, timeout=60_000):
        noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    qtbot.waitUntil(lambda: noise.bar.value == 6, timeout=5_000)
    assert noise.bar.max == 6
    assert noise.fields["gain"].value == pytest.approx(2.5, rel=0.05)


def test_estimate_from_repeated_frames_by_photon_transfer(make_napari_viewer, qtbot,
                                                          monkeypatch):
    """'Repeated frames' fits each pixel's temporal variance against its temporal mean (free
    of the scene's structure); a single image with the box checked gets a clear message."""
    from napari.utils import notifications
    from scipy.ndimage import gaussian_filter

    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = make_napari_viewer(show=True)
    cam = sd.get_noise_model("poisson-gaussian", gain=3.0, offset=10.0, read_noise=2.0)
    rng = np.random.default_rng(0)
    scene = gaussian_filter(rng.uniform(0, 1200, (128, 128)), 1.0)  # fine structure
    viewer.add_image(np.stack([cam.sample(scene, rng=i) for i in range(12)]), name="series")
    viewer.add_image(cam.sample(scene, rng=99), name="one frame")
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    noise.set_params("poisson-gaussian", gain=1.0, offset=10.0)
    noise.frames.value = True
    noise.layer.value = noise.layer.get_choice("one frame")
    noise.estimate()
    assert "needs a stack of repeated frames" in errors[-1] and "(128, 128)" in errors[-1]
    assert noise.estimate_btn.enabled and noise.fields["gain"].value == 1.0
    noise.layer.value = noise.layer.get_choice("series")
    with qtbot.waitSignal(noise.session.noise_changed, timeout=60_000):
        noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    assert noise.estimate_result.nlf.method == "photon-transfer"
    assert "photon-transfer" in noise.fit_text.value
    assert noise.fields["gain"].value == pytest.approx(3.0, rel=0.05)
    assert noise.bar.max == 12


def test_noise_models_keep_their_values_errors_and_warnings(make_napari_viewer, qtbot):
    """Switching models keeps each one's values (an estimate stays with its model), a model
    chosen after an estimate starts from a fit to it, a bad value shows the engine's error
    beside its field and changes nothing, an absurd valid one a warning."""
    viewer = make_napari_viewer(show=True)
    cam = sd.get_noise_model("poisson-gaussian", gain=2.5, offset=0.0, read_noise=4.0)
    x = np.tile(np.linspace(0.0, 1500.0, 256), (256, 1))
    viewer.add_image(cam.sample(x, rng=1).astype(np.float32), name="camera")
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    noise.set_params("poisson-gaussian")
    noise.layer.value = noise.layer.get_choice("camera")
    noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    estimated = {k: b.value for k, b in noise.fields.items()}
    assert estimated["gain"] == pytest.approx(2.5, rel=0.1)
    # another model: fitted to the same measurement, not its placeholder defaults
    noise.set_params("gaussian-signal")
    fitted = sd.fit_noise_level(noise.estimate_result.nlf, "gaussian-signal").noise_model
    for k, b in noise.fields.items():
        assert b.value == pytest.approx(getattr(fitted, k), rel=1e-3, abs=1e-3)
    noise.set_params("gaussian")
    assert noise.fields["sigma"].value != sd.get_noise_model("gaussian").sigma
    noise.set_params(sigma=7.0)
    # back: each model has its own last values
    noise.set_params("poisson-gaussian")
    assert {k: b.value for k, b in noise.fields.items()} == estimated
    assert noise.session.noise_model.gain == pytest.approx(estimated["gain"])
    noise.set_params("gaussian")
    assert noise.fields["sigma"].value == 7.0
    # a bad value: the engine's message, the field marked, the noise model unchanged
    noise.set_params("poisson-gaussian")
    before = noise.session.noise_model
    noise.fields["gain"].value = -1.0
    assert noise.fields["gain"].value == -1.0  # not clamped to a valid value
    assert "gain must be > 0, got -1" in noise.error.value
    assert noise.fields["gain"].native.styleSheet()
    assert not noise.fields["offset"].native.styleSheet()
    assert noise.session.noise_model == before
    noise.fields["gain"].value = 2.0
    assert noise.error.value == "" and not noise.fields["gain"].native.styleSheet()
    # valid but absurd: a warning, the model still taken
    noise.fields["read_noise"].value = 1e6
    assert "read_noise = 1e+06" in noise.warning.value
    assert noise.session.noise_model.read_noise == 1e6
    noise.fields["read_noise"].value = 4.0
    assert noise.warning.value == ""


def test_noise_models_grouped_under_headers_that_cannot_be_chosen(make_napari_viewer):
    viewer = make_napari_viewer()
    _, noise = viewer.window.add_plugin_dock_widget("scoredenoise", "Noise model")
    items = [noise.combo.native.itemText(i) for i in range(noise.combo.native.count())]
    headers = [t for t in items if t.startswith("—")]
    assert headers == ["— Camera models (ADU) —", "— The paper's Table 1 —"]
    for h in headers:
        assert not noise.combo.native.model().item(items.index(h)).isEnabled()
    cameras = items[1:items.index(headers[1])]
    assert set(cameras) == {"poisson-gaussian", "emccd"}
    assert sorted(t for t in items if not t.startswith("—")) == sorted(sd.list_noise_models())
    assert items[items.index(headers[1]) + 1] == "gaussian"  # Table 1 row 1 first
