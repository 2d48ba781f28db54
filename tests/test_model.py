"""Model files, inference and the denoise API (on a quickly trained or untrained network)."""

import pickle

import numpy as np
import pytest
import torch

import scoredenoise as sd
from scoredenoise.model import Cancelled, ModelFileError, ScoreModel, load_model
from scoredenoise.network import build_network


def untrained(dims=2, channels=1, kind="score", seed=0):
    torch.manual_seed(seed)
    net = build_network("small", dims=dims, channels=channels).eval()
    return ScoreModel(net, offset=[10.0] * channels, scale=[100.0] * channels,
                      axes="YX" if dims == 2 else "ZYX", kind=kind,
                      meta={"sigma_a_final": 0.01})


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    m = untrained(channels=2)
    y = np.random.default_rng(0).uniform(0, 200, (2, 40, 56)).astype(np.float32)
    p = m.save(tmp_path / "m.sdmodel")
    m2 = load_model(p)
    np.testing.assert_array_equal(m.score(y, axes="CYX"), m2.score(y, axes="CYX"))
    assert m2.meta == m.meta and m2.axes == m.axes
    np.testing.assert_array_equal(m2.scale, m.scale)
    assert not list(tmp_path.glob(".*"))  # atomic write left no temporary file


def test_crafted_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.sdmodel"
    bad.write_bytes(pickle.dumps({"net": Evil()}))
    torch.save({"net": Evil()}, tmp_path / "evil.pt")
    for f in (bad, tmp_path / "evil.pt"):
        with pytest.raises(ModelFileError, match="not a scoredenoise model file"):
            load_model(f)
    assert not marker.exists()


def test_corrupt_and_foreign_files(tmp_path):
    m = untrained()
    p = m.save(tmp_path / "m.sdmodel")
    data = p.read_bytes()
    (tmp_path / "trunc.sdmodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(tmp_path / "trunc.sdmodel")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(3)}, tmp_path / "foreign.safetensors")
    with pytest.raises(ModelFileError, match="not a scoredenoise model"):
        load_model(tmp_path / "foreign.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.sdmodel")


def _damaged(tmp_path, name, change):
    """A copy of a model file whose header ``change(header, tensors)`` edits."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file
    p = untrained().save(tmp_path / "ok.sdmodel")
    with safe_open(str(p), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header = json.loads(meta["header"])
    change(header, tensors)
    meta["header"] = json.dumps(header)
    save_file(tensors, str(tmp_path / name), metadata=meta)
    return tmp_path / name


@pytest.mark.parametrize("name,change,match", [
    ("noarch", lambda h, t: h.pop("architecture"), "field 'architecture' is missing"),
    ("nonorm", lambda h, t: h.pop("normalisation"), "field 'normalisation' is missing"),
    ("deep", lambda h, t: h["architecture"].update(depth=40),
     r"architecture.depth must be an integer in 0-8, got 40"),
    ("nan", lambda h, t: h["normalisation"].update(scale=[float("nan")]),
     r"normalisation.scale must be 1 finite number\(s\) > 0"),
    ("axes", lambda h, t: h.update(axes="QYX"), "axes must be letters from TCZYXS"),
    ("kind", lambda h, t: h.update(kind="magic"), "kind must be 'score' or 'denoiser'"),
    ("extra", lambda h, t: h.update(extra_noise=-1), "extra_noise must be a finite number"),
    ("range", lambda h, t: h["meta"].update(sigma_range=[0.5, 0.1]),
     "meta.sigma_range must be two numbers"),
    ("weights", lambda h, t: h["architecture"].update(base_channels=64),
     "weights do not match the stored architecture"),
])
def test_damaged_metadata_is_named_before_anything_is_built(tmp_path, monkeypatch, name,
                                                             change, match):
    """Missing fields gave a KeyError traceback, depth 40 allocated gigabytes, NaN scales
    were blamed on the user's read noise at denoise time."""
    import scoredenoise.model as M
    bad = _damaged(tmp_path, f"{name}.sdmodel", change)
    devices = []
    real = M.UNet

    def recording(cfg):
        devices.append(torch.get_default_device().type)
        return real(cfg)
    monkeypatch.setattr(M, "UNet", recording)
    with pytest.raises(ModelFileError, match=match) as err:
        load_model(bad)
    assert f"{name}.sdmodel" in str(err.value)
    assert set(devices) <= {"meta"}  # only shapes were looked at, no weights allocated


@pytest.mark.parametrize("dims, shape, axes", [(2, (300, 290), "YX"),
                                               (2, (3, 150, 170), "TYX"),
                                               (3, (20, 70, 60), "ZYX")])
def test_tiled_inference_equals_whole_image(dims, shape, axes):
    m = untrained(dims=dims)
    y = np.random.default_rng(1).uniform(0, 200, shape).astype(np.float32)
    whole = m.predict(y, axes=axes, tile=1024)
    tiled = m.predict(y, axes=axes, tile=32)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-4 * np.abs(whole).max())


def test_cached_score_resolves_without_the_network():
    m = untrained()
    y = np.random.default_rng(2).uniform(5, 200, (64, 64)).astype(np.float32)
    calls = []
    m.network.head.register_forward_hook(lambda *a: calls.append(1))  # every pass ends here
    s = m.score(y)
    n = len(calls)
    assert n > 0
    a = sd.denoise(y, m, "poisson-gaussian", score=s, gain=2.0, offset=0.0, read_noise=1.0)
    b = sd.denoise(y, m, "poisson-gaussian", score=s, gain=3.0, offset=0.0, read_noise=1.0)
    c = sd.denoise(y, m, "gaussian", score=s, sigma=4.0)
    assert len(calls) == n
    assert not np.allclose(a, b) and a.dtype == np.float32 and c.shape == y.shape


def test_denoise_removes_the_training_smoothing_as_a_mixture():
    """The learned score includes extra_noise and sigma_a: the solve adds them to the model."""
    m = untrained()
    m.extra_noise = 3.0
    y = np.random.default_rng(3).uniform(5, 200, (32, 32)).astype(np.float32)
    s = m.score(y)
    sig = np.hypot(3.0, 0.01 * 100.0)
    expected = sd.get_noise_model("gaussian", sigma=float(np.hypot(5.0, sig))).solve(y, s)
    np.testing.assert_allclose(sd.denoise(y, m, "gaussian", score=s, sigma=5.0), expected,
                               rtol=1e-6)
    pg = sd.denoise(y, m, "poisson-gaussian", score=s, gain=2.0, read_noise=1.0)
    ref = sd.get_noise_model("poisson-gaussian", gain=2.0,
                             read_noise=float(np.hypot(1.0, sig))).solve(y, s)
    np.testing.assert_allclose(pg, ref, rtol=1e-6)


def test_dask_in_dask_out_equals_numpy():
    import dask.array as da
    m = untrained()
    y = np.random.default_rng(4).uniform(5, 200, (2, 200, 180)).astype(np.float32)
    ref = sd.denoise(y, m, "poisson-gaussian", axes="TYX", gain=2.0)
    lazy = sd.denoise(da.from_array(y, chunks=(1, 64, 64)), m, "poisson-gaussian", axes="TYX",
                      gain=2.0)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), ref, rtol=1e-4, atol=1e-3)


def test_multichannel_and_axes_errors():
    m = untrained(channels=2)
    y = np.ones((2, 32, 32), np.float32)
    assert m.score(y, axes="CYX").shape == (2, 32, 32)
    with pytest.raises(ValueError, match="trained on 2 channel"):
        m.score(np.ones((32, 32), np.float32), axes="YX")
    with pytest.raises(ValueError, match="axes 'YX' has 2 letters but the image has 3"):
        m.score(y, axes="YX")
    m3 = untrained(dims=3)
    with pytest.raises(ValueError, match="a 3D network needs axes ZYX"):
        m3.score(np.ones((2, 16, 16), np.float32), axes="TYX")


def test_denoiser_kind_has_no_score():
    m = untrained(kind="denoiser")
    with pytest.raises(ValueError, match="predicts the clean image directly"):
        m.score(np.ones((16, 16), np.float32))
    assert sd.denoise(np.ones((16, 16), np.float32), m).shape == (16, 16)


def test_progress_cancel_stops_inference():
    m = untrained()
    with pytest.raises(sd.Cancelled):
        m.score(np.ones((256, 256), np.float32), tile=64, progress=lambda d, t: d < 3)


def test_shape_mismatch_of_cached_score():
    m = untrained()
    with pytest.raises(ValueError, match="score has shape"):
        sd.denoise(np.ones((16, 16), np.float32), m, score=np.ones((8, 8)))


def test_batched_planes_equal_one_at_a_time():
    # the GPU path batches planes of a stack at each tile position; the result must not change
    m = untrained()
    y = np.random.default_rng(5).uniform(0, 100, (5, 70, 90)).astype(np.float32)
    np.testing.assert_allclose(m.score(y, axes="TYX", batch_size=3), m.score(y, axes="TYX"),
                               rtol=1e-5, atol=1e-6)


def test_a_solution_far_outside_the_data_range_is_flagged():
    """A score that does not fit the image (here: made up) gives values no data allow."""
    m = untrained()
    y = np.random.default_rng(5).uniform(5, 200, (32, 32)).astype(np.float32)
    with pytest.warns(sd.ImplausibleSolutionWarning, match=r"1024 of 1024 pixels .* data 5"):
        sd.denoise(y, m, "gaussian", score=np.full_like(y, 100.0), sigma=10.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.ImplausibleSolutionWarning)
        out = sd.denoise(y, m, "gaussian", score=np.zeros_like(y), sigma=10.0)
    assert out.shape == y.shape


def test_one_noise_model_per_channel():
    """A list of noise models, one per channel: channel c is solved with model c only, in
    memory, lazily and with a correlation operator's halo; a wrong count is a clear error."""
    import dask.array as da

    m = untrained(channels=2)
    y = np.random.default_rng(5).uniform(5, 200, (2, 3, 96, 80)).astype(np.float32)
    s = m.score(y, axes="CTYX")
    models = [sd.get_noise_model("poisson-gaussian", gain=1.0, offset=0.0, read_noise=1.0),
              sd.get_noise_model("gaussian-correlated", sigma=6.0)]
    out = sd.denoise(y, m, models, score=s, axes="CTYX")
    for c, nm in enumerate(models):  # the same model for both channels, channel c kept
        np.testing.assert_array_equal(out[c], sd.denoise(y, m, nm, score=s, axes="CTYX")[c])
    assert not np.allclose(out[0], sd.denoise(y, m, models[1], score=s, axes="CTYX")[0])
    # estimates work as noise models, and lazily, chunk by chunk (the kernel's halo)
    est = sd.estimate_noise(y, "gaussian", axes="CTYX")
    assert len(est) == 2
    lazy = sd.denoise(da.from_array(y, chunks=(2, 1, 48, 40)), m, models, axes="CTYX")
    np.testing.assert_allclose(lazy.compute(), out, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        sd.denoise(y, m, est, score=s, axes="CTYX")[1],
        sd.denoise(y, m, est[1].noise_model, score=s, axes="CTYX")[1], rtol=1e-6)
    with pytest.raises(ValueError, match="1 noise model given .one per channel., but the "
                                         "image has 2 channels"):
        sd.denoise(y, m, models[:1], score=s, axes="CTYX")
    with pytest.raises(ValueError, match="3 noise models given"):
        sd.denoise(da.from_array(y), m, models + models[:1], axes="CTYX")
    with pytest.raises(ValueError, match="empty list"):
        sd.denoise(y, m, [], score=s, axes="CTYX")


def test_tta_auto_is_on_only_where_the_eight_passes_are_cheap():
    """tta="auto" (the default of score, evaluate and denoise) averages the orientations for
    a small score network (8 passes cost 1.4x one pass of the default network), not for the
    default network (8x) nor for a direct denoiser; True/False win; other values are refused."""
    small, direct = untrained(), untrained(kind="denoiser")
    torch.manual_seed(0)
    default = ScoreModel(build_network("default").eval(), offset=[10.0], scale=[100.0],
                         axes="YX", meta={"sigma_a_final": 0.01})
    assert small.tta_default and not default.tta_default and not direct.tta_default
    assert 8 * small.info["flops_per_pixel"] <= 1.5 * default.info["flops_per_pixel"]
    y = np.random.default_rng(0).normal(50, 10, (40, 48)).astype(np.float32)
    np.testing.assert_array_equal(small.score(y), small.score(y, tta=True))
    assert np.abs(small.score(y) - small.score(y, tta=False)).max() > 1e-4
    np.testing.assert_array_equal(default.score(y), default.score(y, tta=False))
    np.testing.assert_array_equal(direct.evaluate(y), direct.evaluate(y, tta=False))
    np.testing.assert_array_equal(sd.denoise(y, small, "gaussian", sigma=10.0),
                                  sd.denoise(y, small, "gaussian", sigma=10.0, tta=True))
    assert small.resolve_tta("auto") and not small.resolve_tta(False)
    with pytest.raises(ValueError, match="tta must be True, False or 'auto', got 'yes'"):
        small.score(y, tta="yes")


def test_tta_is_the_mean_over_the_eight_rotations_and_flips():
    """predict(tta=True) averages the 8 orientations of the Y-X plane, each transformed back:
    the result is exactly equivariant (a rotated or flipped image gives the rotated or
    flipped result) where the plane is a multiple of the pooling grid, and in the interior
    elsewhere; the plain network is not; progress counts the 8 passes and can cancel."""
    m = untrained()
    y = np.random.default_rng(0).uniform(0, 200, (72, 92)).astype(np.float32)
    t = m.predict(y, tta=True)
    manual = np.zeros(y.shape)
    for k in range(4):
        for flip in (False, True):
            a = np.rot90(y, k)
            a = a[:, ::-1] if flip else a
            r = m.predict(np.ascontiguousarray(a))
            manual += np.rot90(r[:, ::-1] if flip else r, -k)
    np.testing.assert_allclose(t, manual / 8, rtol=1e-5, atol=1e-7)
    for f in (np.rot90, np.fliplr, np.transpose):
        np.testing.assert_allclose(m.predict(np.ascontiguousarray(f(y)), tta=True), f(t),
                                   rtol=1e-5, atol=1e-7)
    plain = m.predict(y)
    assert np.abs(m.predict(np.ascontiguousarray(np.rot90(y))) - np.rot90(plain)).max() > \
        100 * np.abs(m.predict(np.ascontiguousarray(np.rot90(y)), tta=True) - np.rot90(t)).max()
    odd = y[:70, :90]
    to = m.predict(odd, tta=True)
    np.testing.assert_allclose(m.predict(np.ascontiguousarray(np.rot90(odd)), tta=True)[
        20:-20, 20:-20], np.rot90(to)[20:-20, 20:-20], rtol=1e-4, atol=1e-6)
    # a stack: each plane on its own; progress over the 8 passes; cancel
    stack = np.stack([y, y[::-1]])
    np.testing.assert_allclose(m.predict(stack, axes="ZYX", tta=True)[1],
                               m.predict(y[::-1].copy(), tta=True), rtol=1e-5, atol=1e-7)
    seen = []
    m.predict(y, tta=True, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1][0] == seen[-1][1] and len({n for _, n in seen}) == 1
    with pytest.raises(Cancelled):
        m.predict(y, tta=True, progress=lambda d, n: d < n // 2)


def test_evaluate_gives_what_denoise_turns_into_the_result_for_either_kind():
    """``evaluate`` spares a caller the question which kind of model it holds: the score of
    a score model, the clean image of a direct denoiser, each turned into the result by
    ``denoise(score=...)`` without the network; in memory and lazily."""
    import dask.array as da

    import scoredenoise as sd

    y = np.random.default_rng(1).uniform(0, 200, (2, 48, 40)).astype(np.float32)
    score_model, denoiser = untrained(), untrained(kind="denoiser", seed=1)
    s = score_model.evaluate(y, axes="SYX")
    assert isinstance(s, sd.Score)
    np.testing.assert_array_equal(s, score_model.score(y, axes="SYX"))
    np.testing.assert_allclose(sd.denoise(y, score_model, "gaussian", score=s, sigma=5.0,
                                          axes="SYX"),
                               sd.denoise(y, score_model, "gaussian", sigma=5.0, axes="SYX"),
                               atol=1e-4)
    x = denoiser.evaluate(y, axes="SYX")
    np.testing.assert_array_equal(x, denoiser.predict(y, axes="SYX"))
    # the denoiser's output is the result: denoise returns it, whatever noise model is named
    np.testing.assert_array_equal(sd.denoise(y, denoiser, "gaussian", score=x, axes="SYX"), x)
    with pytest.raises(ValueError, match="compute it with model.evaluate"):
        sd.denoise(y, denoiser, score=x[:1], axes="SYX")
    lazy = denoiser.evaluate(da.from_array(y, chunks=(1, 48, 40)), axes="SYX")
    assert hasattr(lazy, "dask")
    np.testing.assert_allclose(sd.denoise(da.from_array(y, chunks=(1, 48, 40)), denoiser,
                                          score=lazy, axes="SYX").compute(), x, atol=1e-5)
