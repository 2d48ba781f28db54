"""The napari plugin on a real viewer under Xvfb (pytest-xvfb), driven like a user would."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.demo import psnr

from ..test_model import untrained
from ._helpers import _dock, _press, _train


def test_manifest_validates_and_is_discovered():
    import npe2
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "scoredenoise"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "valid" in out.stdout + out.stderr
    pm = npe2.PluginManager.instance()
    pm.discover()
    m = pm.get_manifest("scoredenoise")
    assert {w.display_name for w in m.contributions.widgets} == {
        "Score denoising (all steps)", "Train", "Noise model", "Denoise"}
    assert {s.key for s in m.contributions.sample_data} == {"fmd_noisy", "fmd_pair"}


def test_train_denoise_live_resolve_and_screenshot(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("scoredenoise", "fmd_pair")
    noisy = viewer.layers["FMD noisy"]
    noisy.scale = (1.0, 0.2, 0.2)
    noisy.translate = (0.0, 5.0, 7.0)
    noisy.metadata["acquisition"] = "confocal"
    gt_layer = viewer.layers["FMD ground truth (avg50)"]
    gt_layer.scale, gt_layer.translate = (0.2, 0.2), (5.0, 7.0)
    gt_layer.visible = False
    gt = gt_layer.data.astype(np.float64)
    # the one dock of the three numbered steps (the docs' screenshot)
    _, dock = viewer.window.add_plugin_dock_widget("scoredenoise",
                                                   "Score denoising (all steps)")
    train, noise, den = dock.train, dock.noise, dock.denoise

    train.select(["FMD noisy"])
    assert train.axes.value == "SYX"
    train.preset.value = "small"
    train.steps.value = 300
    train.patch.value = 32
    _train(qtbot, train, 300)
    assert train.session.model.meta["steps_done"] == 300
    assert len(train.plot.loss) > 10  # the live loss plot was fed
    # a real plot: labelled axes, log-scale loss, the sigma_a range beside it, a legend
    ax = train.plot.ax
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    assert ax.get_yscale() == "log"
    assert train.plot.sigma_ax.get_ylabel() == "sigma_a"
    assert len(train.plot.sigma) == len(train.plot.loss)  # every step's range was recorded
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["training loss", "sigma_a range"]
    assert ax.get_lines()[0].get_xdata()[-1] == 300  # the last step drawn at the end

    # step 2: an estimate from the layer (the plot of the fit), then the photon-transfer values
    noise.set_params("poisson-gaussian")
    noise.layer.value = noise.layer.get_choice("FMD noisy")
    noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    assert noise.plot.ax.get_xlabel() == "mean (ADU)"  # the sample's integer camera counts
    noise.set_params("poisson-gaussian", gain=4.06, offset=3.5, read_noise=1.0)
    den.layer.value = den.layer.get_choice("FMD noisy")
    viewer.dims.set_current_step(0, 1)
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    out = viewer.layers["FMD noisy denoised"]
    assert not np.any(out.data[0]) and not np.any(out.data[2])  # only the plane shown
    gain_db = psnr(out.data[1], gt) - psnr(noisy.data[1], gt)
    assert gain_db > 1.0, gain_db  # measured +4 dB
    np.testing.assert_array_equal(out.scale, noisy.scale)
    np.testing.assert_array_equal(out.translate, noisy.translate)
    md = out.metadata["scoredenoise"]
    assert md["noise_model_chosen"]["params"]["gain"] == 4.06 and md["source"] == "FMD noisy"
    assert out.metadata["acquisition"] == "confocal"

    # change a parameter: the output updates from the cached score, without the network
    calls = []
    train.session.model.network.head.register_forward_hook(lambda *a: calls.append(1))
    before = out.data[1].copy()
    noise.set_params(gain=6.0)
    assert not calls and not np.allclose(out.data[1], before)
    assert out.metadata["scoredenoise"]["noise_model_chosen"]["params"]["gain"] == 6.0

    # results in the layer's own units by default; the signal above the offset on request
    before = out.data[1].copy()
    assert out.metadata["scoredenoise"]["units"] == "input"
    den.signal.value = True
    np.testing.assert_allclose(out.data[1], before - 3.5, atol=1e-3)
    assert out.metadata["scoredenoise"]["units"] == "signal" and not calls
    den.signal.value = False

    # whole layer in a worker, with progress
    _press(den, "whole layer")
    qtbot.waitUntil(lambda: den.denoise_btn.enabled, timeout=120_000)
    assert all(np.any(out.data[i]) for i in range(4))

    # several planes re-solve in a worker (the viewer is not held); changes made meanwhile
    # are coalesced and the last parameters win, without the network
    calls.clear()
    noise.set_params(gain=5.0)
    assert den._resolving  # returned at once: the solve runs in a worker
    noise.set_params(gain=4.5)
    noise.set_params(read_noise=1.2)
    qtbot.waitUntil(lambda: not den._resolving, timeout=60_000)
    assert not calls
    chosen = out.metadata["scoredenoise"]["noise_model_chosen"]["params"]
    assert chosen["gain"] == 4.5 and chosen["read_noise"] == 1.2
    y2, s2 = den.cache[("FMD noisy", (2,))]
    expect = sd.denoise(y2, train.session.model, noise.session.noise_model, score=s2)
    np.testing.assert_allclose(out.data[2], expect, atol=1e-4)

    viewer.window._qt_window.resize(1400, 900)
    viewer.reset_view()
    shots = Path(os.environ.get("SCOREDENOISE_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    for tab, name in enumerate(("napari_train.png", "napari_noise_model.png",
                                "napari_widgets.png")):
        dock.tabs.setCurrentIndex(tab)
        img = viewer.screenshot(path=str(shots / name), canvas_only=False, flash=False)
        assert img.ndim == 3 and img.std() > 5


def test_resolve_time_512_view_without_network(make_napari_viewer, qtbot):
    """512x512 view: changing a parameter re-solves in a fraction of a second, no network."""
    viewer = make_napari_viewer(show=True)
    frames, _ = sd.demo.sample_data()
    big = np.tile(frames[0], (2, 2)).astype(np.float32)
    viewer.add_image(big, name="big")
    train, noise, den = _dock(viewer)
    model = sd.train(big, preset="small", steps=2, patch_size=32, batch_size=2)
    train.session.set_model(model, "test")
    den.layer.value = den.layer.get_choice("big")
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    calls = []
    model.network.head.register_forward_hook(lambda *a: calls.append(1))  # every pass ends here
    times = []
    for g in (2.0, 3.0, 4.0):
        noise.set_params("poisson-gaussian", gain=g)
        times.append(den.last_solve_seconds)
    assert not calls
    assert max(times) < 0.5, times


def test_implausible_solution_is_shown_to_the_user(make_napari_viewer, qtbot, monkeypatch):
    """A score that does not fit the image: the re-solve warns in napari, not in a console."""
    from napari.utils import notifications
    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    viewer = make_napari_viewer(show=True)
    frames, _ = sd.demo.sample_data()
    viewer.add_image(frames[0].astype(np.float32), name="frame")
    train, noise, den = _dock(viewer)
    train.session.set_model(sd.train(frames[0].astype(np.float32), preset="small", steps=2,
                                     patch_size=32, batch_size=2), "test")
    den.layer.value = den.layer.get_choice("frame")
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    noise.set_params("gaussian", sigma=5.0)
    assert not shown
    for key, (y, s) in list(den.cache.items()):
        den.cache[key] = (y, np.full_like(s, 50.0))  # a made-up score
    noise.set_params("gaussian", sigma=10.0)
    assert len(shown) == 1 and "outside" in shown[0] and shown[0].startswith("gaussian")


def test_stop_training_keeps_a_usable_checkpoint(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("scoredenoise", "fmd_noisy")
    train, _, _ = _dock(viewer)
    train.select(["FMD noisy"])
    train.preset.value = "small"
    train.steps.value = 100_000
    train.patch.value = 32
    train.start()
    qtbot.waitUntil(lambda: train.bar.value >= 3, timeout=60_000)
    with qtbot.waitSignal(train.session.model_changed, timeout=60_000):
        train.stop()
    qtbot.waitUntil(lambda: train.start_btn.enabled, timeout=10_000)
    m = train.session.model
    assert m.meta["stopped_early"] and 3 <= m.meta["steps_done"] < 100_000
    ck = sd.load_model(train.session.checkpoint)
    assert ck.meta["steps_done"] == m.meta["steps_done"]
    frame = np.asarray(viewer.layers["FMD noisy"].data[0], np.float32)
    assert ck.score(frame).shape == frame.shape


def test_bad_choices_get_clear_messages(make_napari_viewer, qtbot, monkeypatch):
    from napari.utils import notifications
    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="rgb", rgb=True)
    viewer.add_labels(np.zeros((16, 16), np.int32), name="labels")
    viewer.add_image(np.zeros((16, 16), np.float32), name="flat")
    train, noise, den = _dock(viewer)
    assert [train.layers.native.item(i).text()
            for i in range(train.layers.native.count())] == ["rgb", "flat"]
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    assert "no model" in errors[-1]
    train.select(["rgb"])
    train.start()
    assert "is RGB" in errors[-1]
    train.select(["flat"])
    train.dims.value = 3
    train.start()
    assert "is 2D but the model is 3D" in errors[-1]
    assert train.start_btn.enabled
    with pytest.raises(KeyError):
        noise.set_params("gamma", sigma=3.0)  # gamma has no sigma field
    noise.set_params("gamma", alpha=1.5)
    assert noise.session.noise_model.alpha == 1.5


def test_multiscale_layer_estimates_trains_and_denoises_at_full_resolution(
        make_napari_viewer, qtbot, monkeypatch):
    """A pyramid layer (large images open as one): Estimate measures the finest level (the
    coarser ones average the noise away: a quarter of the variance), Train trains on it, the
    in-memory buttons point to the lazy layer, which denoises it."""
    from napari.utils import notifications

    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = make_napari_viewer(show=True)
    cam = sd.get_noise_model("poisson-gaussian", gain=2.5, offset=0.0, read_noise=4.0)
    x = np.tile(np.linspace(0.0, 1500.0, 384), (384, 1))
    y = cam.sample(x, rng=1).astype(np.float32)
    half = y.reshape(192, 2, 192, 2).mean(axis=(1, 3))
    viewer.add_image([y, half], multiscale=True, name="pyramid")
    train, noise, den = _dock(viewer)
    noise.set_params("poisson-gaussian", gain=1.0)
    noise.layer.value = noise.layer.get_choice("pyramid")
    with qtbot.waitSignal(noise.session.noise_changed, timeout=60_000):
        noise.estimate()
    qtbot.waitUntil(lambda: noise.estimate_result is not None, timeout=60_000)
    assert noise.fields["gain"].value == pytest.approx(2.5, rel=0.05)
    train.select(["pyramid"])
    train.preset.value = "small"
    train.steps.value = 4
    train.patch.value = 32
    _train(qtbot, train, 4)
    assert train.session.model.meta["steps_done"] == 4
    den.layer.value = den.layer.get_choice("pyramid")
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    assert "is multiscale" in errors[-1] and "lazy layer" in errors[-1]
    assert "pyramid denoised" not in viewer.layers
    den.lazy_layer()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    lazy = viewer.layers["pyramid denoised (lazy)"]
    assert lazy.data.shape == y.shape
    expected = sd.denoise(y, train.session.model, noise.session.noise_model)
    np.testing.assert_allclose(np.asarray(lazy.data), expected, rtol=1e-4, atol=1e-3)


def test_renamed_layers_stay_chosen_in_every_widget(make_napari_viewer, qtbot):
    """The layer lists refreshed only on insert and remove: after a rename every button
    raised KeyError "'FMD noisy' is not in list"."""
    viewer = make_napari_viewer(show=True)
    frames, _ = sd.demo.sample_data()
    viewer.add_image(frames[:2, :64, :64].astype(np.float32), name="first")
    viewer.add_image(frames[:2, 64:128, :64].astype(np.float32), name="cells")
    train, noise, den = _dock(viewer)
    train.select(["cells"])
    den.layer.value = den.layer.get_choice("cells")
    noise.layer.value = noise.layer.get_choice("cells")
    viewer.layers["cells"].name = "cells, renamed"
    assert train.selected_names() == ["cells, renamed"]
    assert den.layer.value.name == "cells, renamed"
    assert noise.layer.value.name == "cells, renamed"
    model = sd.train(frames[:2, :64, :64].astype(np.float32), preset="small", steps=2,
                     patch_size=32, batch_size=2)
    train.session.set_model(model, "test")
    den.preview()  # no KeyError: the renamed layer is denoised
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    assert "cells, renamed denoised" in viewer.layers


def test_train_widget_refuses_bad_axes_and_clears_stale_progress(make_napari_viewer, qtbot,
                                                                 tmp_path, monkeypatch):
    viewer = make_napari_viewer(show=True)
    frames = np.random.default_rng(0).poisson(30, (4, 64, 64)).astype(np.float32)
    viewer.add_image(frames, name="frames")
    train, _, _ = _dock(viewer)
    errors, warns = [], []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    monkeypatch.setattr("napari.utils.notifications.show_warning", warns.append)
    assert train.selected_names() == ["frames"]  # the only layer: preselected
    assert train.axes.value == "ZYX"  # no axes recorded: the engine's default
    viewer.layers["frames"].metadata["axes"] = "TYX"  # recorded (the plugin's reader)
    train.select([])
    train.select(["frames"])
    assert train.axes.value == "TYX"
    train.axes.value = "ZZX"  # refused with the engine's reason, not replaced by a guess
    train.start()
    assert "each of the letters" in errors[-1] and train.start_btn.enabled
    assert "not started" in train.status.value
    train.axes.value = "CYX"  # valid, but frames as channels: said before training
    train.steps.value = 2
    train.preset.value = "small"
    train.patch.value = 32
    _train(qtbot, train, 2)
    assert "4-channel model" in warns[-1]
    assert train.session.model.channels == 4
    assert train.bar.value == 2
    # our own results are not offered as training data
    viewer.add_image(frames[0], name="frames denoised",
                     metadata={"scoredenoise": {"source": "frames"}})
    assert "frames denoised" not in [train.layers.native.item(i).text()
                                     for i in range(train.layers.native.count())]
    # a loaded model: the last run's bar and loss curve are cleared
    path = train.save_model(tmp_path / "m.sdmodel")
    train.load_model(path)
    assert train.bar.value == 0 and train.bar.native.format() == ""
    assert not train.plot.loss


def test_one_dock_numbered_steps_fits_a_1080_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("scoredenoise", "fmd_noisy")
    _, dock = viewer.window.add_plugin_dock_widget("scoredenoise",
                                                   "Score denoising (all steps)")
    tabs = dock.tabs
    assert [tabs.tabText(i) for i in range(3)] == ["1 Train or load", "2 Noise model",
                                                   "3 Denoise"]
    # the noisy sample is preselected for training
    assert dock.train.selected_names() == [viewer.layers[0].name]
    # the fullest page, the noise model after an estimate (fit text and plot), fits a
    # 1080-pixel screen below napari's title, menu and status bars (about 150 px)
    dock.noise.set_params("poisson-gaussian")
    dock.noise.layer.value = dock.noise.layer.get_choice(viewer.layers[0].name)
    dock.noise.estimate()
    qtbot.waitUntil(lambda: dock.noise.estimate_result is not None, timeout=60_000)
    for i in range(3):
        tabs.setCurrentIndex(i)
        page = tabs.widget(i).widget()
        need = page.sizeHint().height() + tabs.tabBar().sizeHint().height()
        assert need <= 1080 - 150, (tabs.tabText(i), need)
        # and as wide as the dock: nothing clipped on the right (the tabs do not scroll
        # sideways)
        width = page.minimumSizeHint().width()
        step = (dock.train, dock.noise, dock.denoise)[i]
        assert width <= tabs.widget(i).viewport().width(), (
            tabs.tabText(i), width, str([(type(w).__name__, w.native.minimumSizeHint().width())
                                     for w in step]))
    # the steps share one session: a model ready leads on to step 2
    tabs.setCurrentIndex(0)
    dock.train.session.set_model(untrained(), "test")
    assert tabs.currentIndex() == 1
    assert dock.denoise.session is dock.noise.session is dock.train.session


def test_one_denoise_button_whose_scope_is_a_choice(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _, den = viewer.window.add_plugin_dock_widget("scoredenoise", "Denoise")
    assert [den.scope.native.itemText(i) for i in range(den.scope.native.count())] == [
        "plane shown", "whole layer", "lazy layer (as you browse)", "whole layer to file",
        "posterior std of the plane shown", "posterior std of the whole layer",
        "posterior samples of the plane shown (needs a prior)"]
    # the output path only where it is needed
    assert not den.file_path.native.isVisibleTo(den.native)
    assert not den.prior_row.native.isVisibleTo(den.native)  # the prior only for samples
    den.scope.value = "whole layer to file"
    assert den.file_path.native.isVisibleTo(den.native)
    assert "stream" in den.denoise_btn.tooltip


def test_expected_training_time_is_shown_before_start(make_napari_viewer, qtbot, monkeypatch):
    measured = []

    def fake_time_per_step(*, config, **kw):  # the engine's measurement (test_training)
        measured.append(config)
        return {"small": 0.1, "default": 0.4}[config.preset]

    monkeypatch.setattr(sd, "time_per_step", fake_time_per_step)
    viewer = make_napari_viewer(show=True)  # measured once the dock is shown
    _, train = viewer.window.add_plugin_dock_widget("scoredenoise", "Train")
    # defaults that fit the device: on a CPU a result in 2-3 minutes
    from scoredenoise.training import interactive_settings

    quick = interactive_settings("auto")
    assert (train.preset.value, train.steps.value) == (quick["preset"],
                                                                 quick["steps"])
    train.preset.value = "small"
    train.steps.value = 1200
    qtbot.waitUntil(lambda: train.expected_seconds() is not None, timeout=10_000)
    assert train.expected_seconds() == pytest.approx(120.0)
    assert train.eta.value.startswith("about 2.0 min")
    assert measured[-1].preset == "small" and measured[-1].patch_size == 64
    train.steps.value = 600  # steps rescale the measurement: nothing measured again
    n = len(measured)
    assert train.eta.value.startswith("about 60 s")
    train.preset.value = "default"  # a new network size is measured
    qtbot.waitUntil(lambda: "4.0 min" in train.eta.value, timeout=10_000)  # 600 x 0.4 s
    assert len(measured) == n + 1
    # settings that cannot be measured (no such preset here: the fake raises) say why once
    # and are not measured again and again
    train.preset.value = "large"
    qtbot.waitUntil(lambda: train.eta.value.startswith("not measured"), timeout=10_000)
    qtbot.wait(1500)  # five timer periods
    assert len(measured) == n + 2 and train.expected_seconds() is None
    train.steps.value = 700
    qtbot.wait(700)
    assert len(measured) == n + 2 and train.eta.value.startswith("not measured")


def test_the_qt_pool_keeps_threads_beside_the_workers(make_napari_viewer):
    # napari's workers share QThreadPool.globalInstance() with Qt's own image conversion on
    # repaint, which waits for a pool thread while holding the GIL: with one thread a core,
    # a training and an estimate on 2 cores froze the viewer (found by this suite)
    from qtpy.QtCore import QThreadPool

    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget("scoredenoise", "Score denoising (all steps)")
    assert QThreadPool.globalInstance().maxThreadCount() >= 8


def test_the_plane_shown_is_read_in_the_layers_own_coordinates(make_napari_viewer):
    """A layer with a scale and translate, behind a layer with one more axis in front (a
    samples layer): the plane shown is the layer's own data index, not a slider step."""
    from scoredenoise._napari._session import plane_shown as _plane_shown

    viewer = make_napari_viewer()
    ly = viewer.add_image(np.zeros((5, 8, 8), np.float32), scale=(2.0, 1.0, 1.0),
                          translate=(10.0, 0.0, 0.0))
    viewer.add_image(np.zeros((3, 5, 8, 8), np.float32), scale=(1.0, 2.0, 1.0, 1.0),
                     translate=(0.0, 10.0, 0.0, 0.0))
    viewer.dims.set_point(1, 14.0)  # world z = 14 is the layer's plane (14 - 10) / 2 = 2
    viewer.dims.set_point(0, 1.0)  # the samples axis: not the layer's
    assert _plane_shown(viewer, ly, 1) == (2,)


def test_tta_box_averages_the_orientations_and_is_recorded(make_napari_viewer, qtbot):
    """A model sets the box to its default (on for a small network); the box computes the
    plane again with the 8 orientations averaged (the cached plain score is not reused),
    equal to the API's tta=True, and the result records it."""
    viewer = make_napari_viewer()
    y = np.random.default_rng(0).normal(60, 10, size=(48, 48)).astype(np.float32)
    viewer.add_image(y, name="img")
    train, noise, den = _dock(viewer)
    assert den.tta.value is False
    train.session.set_model(untrained(), "test")
    assert den.tta.value is True  # the small network's default
    den.tta.value = False
    noise.set_params("gaussian", sigma=10.0)
    den.layer.value = den.layer.get_choice("img")
    _press(den, "plane shown")
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    out = viewer.layers["img denoised"]
    plain = np.array(out.data)
    assert out.metadata["scoredenoise"]["tta"] is False
    den.tta.value = True
    _press(den, "plane shown")
    qtbot.waitUntil(lambda: not den.running and not den._resolving, timeout=60_000)
    g = noise.session.noise_model
    np.testing.assert_allclose(out.data, sd.denoise(y, train.session.model, g, tta=True),
                               rtol=1e-5, atol=1e-4)
    assert np.abs(out.data - plain).max() > 1e-4
    assert out.metadata["scoredenoise"]["tta"] is True


def test_layer_choices_follow_the_viewer_in_every_step(make_napari_viewer):
    """The steps are magicgui containers whose layer choices (``napari.layers.Image``) follow
    the viewer: a layer added after docking is offered in every step, a removed one is gone,
    and the plugin's own results are not offered as sources."""
    from magicgui.widgets import Container
    from napari.layers import Image

    viewer = make_napari_viewer()
    train, noise, den = _dock(viewer)
    assert all(isinstance(w, Container) for w in (train, noise, den))
    for combo in (noise.layer, den.layer):
        assert combo.annotation is Image
    assert not train.layers.choices and noise.layer.value is None and den.layer.value is None
    a = viewer.add_image(np.zeros((8, 8), np.float32), name="a")
    viewer.add_image(np.zeros((8, 8), np.float32), name="a denoised",
                     metadata={"scoredenoise": {"source": "a"}})
    viewer.add_image(np.zeros((8, 8), np.float32), name="b")
    for w in (train.layers, noise.layer, den.layer):
        assert [ly.name for ly in w.choices] == ["a", "b"]
    assert train.selected_names() == ["a"]  # the first layer is preselected
    assert noise.layer.value is a and den.layer.value is a
    viewer.layers.remove("a")
    for w in (train.layers, noise.layer, den.layer):
        assert [ly.name for ly in w.choices] == ["b"]
    assert noise.layer.value.name == den.layer.value.name == "b"
