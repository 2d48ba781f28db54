"""Large stacks in napari: lazy opening, a lazy denoised layer computed as the user browses,
and "Denoise all to file" with progress, cancel and resume (real viewer under Xvfb)."""

import time

import numpy as np
import tifffile
import torch

import scoredenoise as sd
from scoredenoise.network import build_network

from ..test_model import untrained
from ._helpers import _press


def _stack_file(tmp_path, n=8, size=192):
    rng = np.random.default_rng(0)
    x = 40 + 30 * np.sin(np.linspace(0, 6, size))[None, :] + np.zeros((size, size))
    y = rng.poisson(np.broadcast_to(x, (n, size, size))).astype(np.uint16)
    p = tmp_path / "big.tif"
    tifffile.imwrite(p, y, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TYX", "unit": "um"})
    return p, y


def _denoise_widget(viewer):
    _, den = viewer.window.add_plugin_dock_widget("scoredenoise", "Denoise")
    den.session.set_model(untrained(), "untrained test model")
    den.session.set_noise_model(sd.get_noise_model("gaussian", sigma=5.0))
    return den


def test_lazy_layer_computes_only_the_planes_shown(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    path, y = _stack_file(tmp_path)
    [src] = viewer.open(path, plugin="scoredenoise")
    assert type(src.data).__module__.startswith("dask")  # opened lazily
    assert tuple(src.scale) == (1.0, 0.5, 0.5)
    assert tuple(src.axis_labels) == ("T", "Y", "X")  # the file's axes, not -3 / -2 / -1
    assert [str(u) for u in src.units] == ["pixel", "micrometer", "micrometer"]
    den = _denoise_widget(viewer)
    den.layer.value = den.layer.get_choice(src.name)
    viewer.dims.set_current_step(0, 2)
    _press(den, "lazy layer (as you browse)")
    qtbot.waitUntil(lambda: f"{src.name} denoised (lazy)" in viewer.layers, timeout=30_000)
    out = viewer.layers[f"{src.name} denoised (lazy)"]
    assert type(out.data).__module__.startswith("dask") and tuple(out.scale) == (1, 0.5, 0.5)
    qtbot.waitUntil(lambda: den.chunk_cache.computed >= 1, timeout=30_000)
    qtbot.wait(200)
    # the plane shown (napari also slices a new layer once at plane 0): not the stack of 8
    shown = den.chunk_cache.computed
    assert shown <= 2
    viewer.dims.set_current_step(0, 6)
    qtbot.waitUntil(lambda: den.chunk_cache.computed == shown + 1, timeout=30_000)
    viewer.dims.set_current_step(0, 2)  # back: the kept score chunk, no network run
    qtbot.wait(200)
    assert den.chunk_cache.computed == shown + 1
    # new noise parameters: only the solve runs again, on the kept scores
    den.session.set_noise_model(sd.get_noise_model("gaussian", sigma=9.0))
    qtbot.wait(200)
    assert den.chunk_cache.computed == shown + 1
    assert out.metadata["scoredenoise"]["noise_model_chosen"]["params"]["sigma"] == 9.0
    ref = sd.denoise(y[2].astype(np.float32), den.session.model, "gaussian", sigma=9.0)
    np.testing.assert_allclose(np.asarray(out.data[2]), ref, rtol=1e-4, atol=1e-3)


def _conditioned_model():
    torch.manual_seed(0)
    net = build_network("small", sigma_input=True).eval()
    return sd.ScoreModel(net, offset=[10.0], scale=[100.0], axes="YX", kind="score",
                         meta={"sigma_range": [0.01, 0.5]})


def test_lazy_layer_of_a_z_stack_returns_at_once_and_computes_one_plane(
        make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A plain 20-plane TIFF (axes ZYX, read as one chunk of 20 planes before): the click
    returns without running the network (sigma_a is chosen in a worker, with the bar), and
    browsing computes the plane shown, not the stack."""
    viewer = make_napari_viewer(show=True)
    rng = np.random.default_rng(1)
    y = rng.poisson(50, (20, 128, 128)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "z.tif", y)
    [src] = viewer.open(tmp_path / "z.tif", plugin="scoredenoise")
    den = _denoise_widget(viewer)
    model = _conditioned_model()
    den.session.set_model(model, "conditioned test model")
    den.tta.value = False  # one network pass a plane (the small model's default is 8)
    den.session.set_noise_model(sd.get_noise_model("poisson-gaussian", gain=1.0,
                                                   read_noise=1.0))
    calls = []
    model.network.head.register_forward_hook(lambda *a: calls.append(1))
    before_layer = []
    resolve = den._lazy_resolve
    monkeypatch.setattr(den, "_lazy_resolve", lambda: (before_layer.append(len(calls)),
                                                       resolve()))
    den.layer.value = den.layer.get_choice(src.name)
    viewer.dims.set_current_step(0, 7)
    t0 = time.perf_counter()
    _press(den, "lazy layer (as you browse)")
    click = time.perf_counter() - t0
    assert den.running and not den.denoise_btn.enabled and den.cancel_btn.enabled
    assert click < 1.0, f"the click blocked the viewer {click:.2f} s"
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    selection_calls = before_layer[0]
    assert selection_calls > 0  # sigma_a chosen by SURE in the worker
    out = viewer.layers[f"{src.name} denoised (lazy)"]
    assert out.data.chunksize[0] == 1  # one plane a chunk for a 2D network
    qtbot.waitUntil(lambda: den.chunk_cache.computed >= 1, timeout=30_000)
    qtbot.wait(300)
    assert den.chunk_cache.computed <= 2  # the plane shown (and plane 0, sliced on adding)
    assert len(calls) - selection_calls == den.chunk_cache.computed  # one pass a plane


def test_lazy_layer_cancel_leaves_no_layer(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    path, _ = _stack_file(tmp_path)
    [src] = viewer.open(path, plugin="scoredenoise")
    den = _denoise_widget(viewer)
    den.session.set_model(_conditioned_model(), "conditioned test model")
    den.layer.value = den.layer.get_choice(src.name)
    _press(den, "lazy layer (as you browse)")
    den.cancel_btn.native.click()
    qtbot.waitUntil(lambda: not den.running, timeout=60_000)
    assert "cancelled" in den.status.value
    assert f"{src.name} denoised (lazy)" not in viewer.layers
    assert den.denoise_btn.enabled


def test_denoise_all_to_file_with_cancel_and_resume(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    path, y = _stack_file(tmp_path)
    [src] = viewer.open(path, plugin="scoredenoise")
    den = _denoise_widget(viewer)
    den.layer.value = den.layer.get_choice(src.name)
    target = tmp_path / "out" / "big_denoised.tif"
    den.file_path.value = str(target)

    def cancel_at_3(done, total, _):
        if done >= 3:
            den.cancel_btn.native.click()

    den._progress.step.connect(cancel_at_3)
    _press(den, "whole layer to file")
    qtbot.waitUntil(lambda: den.denoise_btn.enabled, timeout=60_000)
    assert not target.exists()  # cancelled: nothing under the final name
    assert (target.parent / ".big_denoised.tif.partial.zarr").is_dir()
    den._progress.step.disconnect(cancel_at_3)
    _press(den, "whole layer to file")  # resumes from the finished chunks
    name = f"{src.name} denoised (big_denoised.tif)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=60_000)
    assert "resumed" in den.status.value and " 0 resumed" not in den.status.value
    out = viewer.layers[name]
    assert tuple(out.scale) == (1.0, 0.5, 0.5)
    assert out.metadata["scoredenoise"]["noise_model"]["name"].startswith("gaussian")
    ref = sd.denoise(y.astype(np.float32), den.session.model, "gaussian", sigma=5.0,
                     axes="TYX")
    np.testing.assert_allclose(np.asarray(out.data), ref, rtol=1e-4, atol=1e-3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["big_denoised.tif"]


def test_denoise_to_an_existing_file_asks_first(make_napari_viewer, qtbot, tmp_path,
                                                monkeypatch):
    """'Denoise all to file' replaced an existing file without asking (a 10 MB stack became
    a 262 kB result)."""
    viewer = make_napari_viewer(show=True)
    path, _ = _stack_file(tmp_path)
    [src] = viewer.open(path, plugin="scoredenoise")
    den = _denoise_widget(viewer)
    den.layer.value = den.layer.get_choice(src.name)
    target = tmp_path / "precious.tif"
    target.write_bytes(b"ten megabytes of data")
    den.file_path.value = str(target)
    asked = []
    monkeypatch.setattr(den, "_confirm_overwrite", lambda p: asked.append(p) or False)
    _press(den, "whole layer to file")
    assert asked == [target] and target.read_bytes() == b"ten megabytes of data"
    assert "kept, nothing written" in den.status.value
    monkeypatch.setattr(den, "_confirm_overwrite", lambda p: asked.append(p) or True)
    _press(den, "whole layer to file")
    qtbot.waitUntil(lambda: den.denoise_btn.enabled and "wrote" in den.status.value,
                    timeout=60_000)
    assert target.read_bytes() != b"ten megabytes of data"
    assert sd.open_image(target).data.shape == src.data.shape


def test_related_method_trains_in_the_widget_and_denoises(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    from scoredenoise.demo import sample_data

    frames, _ = sample_data()
    viewer.add_image(frames[:2, :128, :128].astype(np.float32), name="noisy")
    _, train = viewer.window.add_plugin_dock_widget("scoredenoise", "Train")
    _, den = viewer.window.add_plugin_dock_widget("scoredenoise", "Denoise")
    train.select(["noisy"])
    train.objective.value = "neighbor2neighbor"
    train.preset.value = "small"
    train.steps.value = 5
    with qtbot.waitSignal(train.session.model_changed, timeout=120_000):
        train.start()
    qtbot.waitUntil(lambda: train.start_btn.enabled, timeout=10_000)
    assert den.session.model.kind == "denoiser"
    den.layer.value = den.layer.get_choice("noisy")
    den.preview()
    qtbot.waitUntil(lambda: not den.running, timeout=120_000)
    out = viewer.layers["noisy denoised"]
    assert out.metadata["scoredenoise"]["method"] == "neighbor2neighbor"
    assert "no noise model to tune" in den.status.value
    ref = den.session.model.predict(frames[0, :128, :128].astype(np.float32))
    np.testing.assert_allclose(out.data[0], ref, rtol=1e-4, atol=1e-3)
