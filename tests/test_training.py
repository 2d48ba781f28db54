"""AR-DAE training: schedules, lazy patches, checkpoints, and that it learns."""

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.training import (
    PatchSampler,
    auto_conditioned,
    auto_extra_noise,
    lr_schedule,
    sigma_a_schedule,
)


def test_sigma_a_schedule_is_the_papers():
    total = 1000
    vals = [sigma_a_schedule(s, total) for s in range(total)]
    assert vals[0] == 0.05
    assert all(vals[i] == vals[i - i % 50] for i in range(950))  # constant within stages of 50
    assert all(a >= b for a, b in zip(vals, vals[1:]))           # annealed down
    assert set(vals[950:]) == {1e-6}                             # held for the final 50
    assert vals[949] == pytest.approx(1e-6)                     # linear down to the end value
    assert lr_schedule(799, 1000, 1e-3) == 1e-3 and lr_schedule(800, 1000, 1e-3) == 1e-4


def test_quantisation_step_and_auto_extra_noise():
    ints = np.random.default_rng(0).integers(0, 50, (64, 64)).astype(np.float32)
    assert PatchSampler(ints, patch_size=16).quantisation_step() == 1.0
    assert PatchSampler(ints * 5, patch_size=16).quantisation_step() == 5.0
    cont = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert PatchSampler(cont, patch_size=16).quantisation_step() == 0.0
    m = sd.train(ints, preset="small", steps=2, patch_size=16, batch_size=2, units="data")
    assert m.extra_noise == 1.0


def _photon_frames(gain, read, n=2, size=160, seed=0, peak=30.0):
    """Integer camera frames of a textured scene: Poisson counts times gain plus read noise
    (``peak / 4`` photo-electrons a pixel on average)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    clean = peak * (np.sin(xx / 11.0) * np.cos(yy / 7.0)) ** 2  # photons, with dark pixels
    return [np.round(gain * rng.poisson(clean) + 100 + rng.normal(0, read, clean.shape))
            .astype(np.uint16) for _ in range(n)]


def test_auto_extra_noise_smooths_photon_counts_to_half_a_step():
    """Photon counts 8 ADU apart with 1 ADU read noise: a comb; "auto" adds the Gaussian that
    brings the read noise to half a photon step, sqrt(4^2 - 1) = 3.87 ADU."""
    frames = _photon_frames(8.0, 1.0)
    s = PatchSampler(frames, patch_size=16)
    gain, read = s.camera()
    assert abs(gain / 8.0 - 1) < 0.15 and read < 2.5
    extra = auto_extra_noise(s)
    assert abs(extra - np.sqrt((0.5 * gain) ** 2 - read ** 2)) < 1e-9
    assert 3.0 < extra < 4.7
    m = sd.train(frames, preset="small", steps=2, patch_size=16, batch_size=2)
    assert m.extra_noise == extra
    # read noise already above half a step: only the lattice's 1 ADU
    wide = _photon_frames(4.0, 3.0)
    assert auto_extra_noise(PatchSampler(wide, patch_size=16)) == 1.0
    # continuous data: nothing
    cont = [f.astype(np.float32) + np.random.default_rng(1).random(f.shape, np.float32)
            for f in frames]
    assert auto_extra_noise(PatchSampler(cont, patch_size=16)) == 0.0


def test_conditioned_auto_follows_the_photon_count():
    """conditioned="auto": photon-starved counts (about 2 photo-electrons a pixel) train the
    sigma-conditioned network, brighter counts (30) and Gaussian noise the paper's network; a
    given sigma_a range or an explicit choice wins."""
    dim, bright = _photon_frames(8.0, 1.0, peak=7.5), _photon_frames(8.0, 1.0, peak=120.0)
    s_dim, s_bright = PatchSampler(dim, patch_size=16), PatchSampler(bright, patch_size=16)
    assert abs(s_dim.photons_per_pixel() / 1.875 - 1) < 0.25
    assert abs(s_bright.photons_per_pixel() / 30.0 - 1) < 0.25
    assert auto_conditioned(s_dim) and not auto_conditioned(s_bright)
    rng = np.random.default_rng(3)
    gauss = [(100 + 20 * np.sin(np.arange(160) / 9.0)[:, None] * np.ones((1, 160))
              + rng.normal(0, 5, (160, 160))).astype(np.float32) for _ in range(2)]
    assert not auto_conditioned(PatchSampler(gauss, patch_size=16))

    kw = dict(preset="small", steps=2, patch_size=16, batch_size=2, seed=0)
    assert sd.train(dim, **kw).conditioned
    m = sd.train(bright, **kw)
    assert not m.conditioned
    assert m.meta["training"]["conditioned"] is False and m.train_config.conditioned == "auto"
    assert not sd.train(gauss, **kw).conditioned
    assert sd.train(bright, conditioned=True, **kw).conditioned
    assert sd.train(bright, sigma_a=(0.01, 0.1), **kw).conditioned
    assert not sd.train(dim, conditioned=False, **kw).conditioned
    with pytest.raises(ValueError, match="conditioned must be True, False or 'auto', got 'yes'"):
        sd.train(dim, conditioned="yes", **kw)


def test_preset_and_steps_follow_the_network_chosen():
    """preset=None: the small network (4000 steps) for photon-starved data, whose score
    network is conditioned; the default one (1000 steps) for brighter data and for the
    related methods; given values win; all recorded resolved, as given in train_config."""
    from scoredenoise.train_config import PRESET_STEPS

    dim, bright = _photon_frames(8.0, 1.0, peak=7.5), _photon_frames(8.0, 1.0, peak=120.0)
    totals = []

    def first_step(step, steps, logs):
        totals.append(steps)
        return False  # stop after one step: the schedule's length is what is checked

    kw = dict(patch_size=16, batch_size=2, seed=0, progress=first_step)
    m = sd.train(dim, **kw)
    assert m.conditioned and m.network.config.base_channels == 16
    assert (m.meta["training"]["preset"], m.meta["training"]["steps"]) == ("small", 4000)
    assert totals[-1] == PRESET_STEPS["small"] == 4000
    assert m.train_config.preset is None and m.train_config.steps is None
    assert m.tta_default  # and its score is averaged over the orientations by default
    m = sd.train(bright, **kw)
    assert not m.conditioned and m.network.config.base_channels == 32
    assert (m.meta["training"]["preset"], totals[-1]) == ("default", 1000)
    assert not m.tta_default
    m = sd.train(dim, objective="neighbor2neighbor", **kw)
    assert m.network.config.base_channels == 32 and totals[-1] == 1000
    m = sd.train(dim, preset="default", **kw)  # given: kept, with its own step count
    assert m.conditioned and m.network.config.base_channels == 32 and totals[-1] == 1000
    m = sd.train(dim, steps=7, **kw)
    assert m.network.config.base_channels == 16 and totals[-1] == 7
    # continuing a model keeps its network, and by default its preset's step count
    m2 = sd.train(dim, model=m, **kw)
    assert m2.network.config.base_channels == 16 and totals[-1] == 4000
    with pytest.raises(ValueError, match="unknown preset 'tiny'; choose one of small"):
        sd.train(dim, preset="tiny", **kw)


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    kw = dict(preset="small", steps=12, patch_size=16, batch_size=2, seed=3, anneal_every=4)
    full = sd.train(img, **kw)
    ck = tmp_path / "ck.sdmodel"
    part = sd.train(img, checkpoint=ck, checkpoint_every=100,
                    progress=lambda s, t, logs: s < 5, **kw)
    assert part.meta["stopped_early"] and part.meta["steps_done"] == 5
    assert sd.load_model(ck).meta["steps_done"] == 5  # the checkpoint is a usable model
    resumed = sd.train(img, resume=ck, **kw)
    assert resumed.meta["steps_done"] == 12
    for a, b in zip(full.network.parameters(), resumed.network.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_resume_needs_a_checkpoint(tmp_path):
    img = np.ones((32, 32), np.float32)
    m = sd.train(img + np.random.default_rng(0).random((32, 32)).astype(np.float32),
                 preset="small", steps=1, patch_size=16, batch_size=1)
    p = m.save(tmp_path / "m.sdmodel")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        sd.train(img, resume=p, patch_size=16)


def test_validation_loss_and_history():
    img = np.random.default_rng(0).normal(100, 10, (96, 64)).astype(np.float32)
    m = sd.train(img, preset="small", steps=10, patch_size=16, batch_size=2, val_fraction=0.25,
                 val_every=5)
    vals = [h for h in m.meta["history"] if "val_loss" in h]
    assert [h["step"] for h in vals] == [5, 10] and all(np.isfinite(h["val_loss"]) for h in vals)


def test_continue_training_a_loaded_model(tmp_path):
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    m = sd.train(img, preset="small", steps=3, patch_size=16, batch_size=2)
    m2 = sd.train(img, model=sd.load_model(m.save(tmp_path / "a.sdmodel")), steps=3,
                  patch_size=16, batch_size=2)
    np.testing.assert_array_equal(m2.scale, m.scale)


@pytest.mark.parametrize("kwargs, match", [
    (dict(objective="supervised"), "needs targets"),
    (dict(preset="tiny"), "unknown preset"),
    (dict(steps=0), "steps must be >= 1"),
    (dict(extra_noise=-1.0), "extra_noise must be 'auto' or >= 0"),
    (dict(patch_size=128), "smaller than the patch size"),
    (dict(dims=3), "a 3D network needs axes ZYX"),
])
def test_bad_training_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sd.train(np.zeros((64, 64), np.float32), **kwargs)


def gaussian_mixture_pixels(rng, shape):
    return (np.where(rng.random(shape) < 0.5, 0.3, 0.7) + 0.05 * rng.normal(size=shape))


@pytest.mark.slow
def test_learns_a_known_score():
    """Pixels i.i.d. from 0.5 N(0.3, 0.05^2) + 0.5 N(0.7, 0.05^2): the score is known.

    The network learns the score of the data smoothed by the sigma_a it is evaluated at
    (model.smoothing_sigma(0, s.sigma_a)); after 2500 steps (about 1.5 minutes) it matches
    that closed form within 25 % RMS (measured 18.6 %; 25.0 % after 1500 fp32 steps; the
    unconditioned network measured 20 %, 42 % after 400 steps: the AR-DAE estimator converges
    slowly).
    """
    rng = np.random.default_rng(0)
    imgs = gaussian_mixture_pixels(rng, (8, 64, 64)).astype(np.float32)
    m = sd.train(imgs, axes="SYX", preset="small", steps=2500, patch_size=32, batch_size=16,
                 seed=0)
    y = gaussian_mixture_pixels(rng, (64, 64)).astype(np.float32)
    s = m.score(y)
    v = 0.05 ** 2 + m.smoothing_sigma(0, s.sigma_a) ** 2
    a, b = np.exp(-(y - 0.3) ** 2 / (2 * v)), np.exp(-(y - 0.7) ** 2 / (2 * v))
    true = (a * -(y - 0.3) + b * -(y - 0.7)) / (v * (a + b))
    assert np.sqrt(np.mean((s - true) ** 2)) < 0.25 * np.sqrt(np.mean(true ** 2))


def test_end_to_end_real_image_gaussian_noise():
    """A short seeded run on a real image (scikit-image's camera) with sigma=25 noise."""
    from skimage import data
    clean = data.camera()[96:224, 160:288].astype(np.float32)
    noisy = sd.get_noise_model("gaussian", sigma=25.0).sample(clean, rng=0).astype(np.float32)
    m = sd.train(noisy, preset="small", steps=300, patch_size=32, batch_size=8, seed=0)
    x = sd.denoise(noisy, m, "gaussian", sigma=25.0)

    def psnr(a):
        return 10 * np.log10(255 ** 2 / np.mean((a - clean) ** 2))

    gain = psnr(x) - psnr(noisy)
    assert gain > 5.0, gain  # measured +6.5 dB (20.2 -> 26.7 dB) in 8 s


def test_3d_network_and_multichannel_training():
    rng = np.random.default_rng(0)
    vol = rng.poisson(20, (2, 24, 40, 40)).astype(np.uint16)  # (C, Z, Y, X), integer data
    m = sd.train(vol, axes="CZYX", dims=3, preset="small", steps=2, patch_size=16,
                 batch_size=1, seed=0)
    assert m.dims == 3 and m.channels == 2 and m.extra_noise == 1.0
    x = sd.denoise(vol, m, "poisson-gaussian", gain=1.0, read_noise=0.5)
    assert x.shape == vol.shape and x.dtype == np.float32
    assert m.scale.shape == (2,)
    # continuing takes the network's dimensionality and extra noise, without repeating them
    m2 = sd.train(vol, axes="CZYX", model=m, steps=1, patch_size=16, batch_size=1)
    assert m2.dims == 3 and m2.extra_noise == m.extra_noise


def _weights(model):
    return [p.detach().numpy().copy() for p in model.network.parameters()]


def test_ema_delivers_the_moving_average_of_the_weights():
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    kw = dict(preset="small", patch_size=16, batch_size=2, seed=3)
    # the raw trajectory is the plain one: w_k after k steps (constant lr below 5 steps)
    w = [_weights(sd.train(img, steps=1, lr=1e-30, **kw))]  # w0: the initial weights
    w += [_weights(sd.train(img, steps=k, **kw)) for k in (1, 2, 3)]
    avg = sd.train(img, steps=3, ema=0.5, **kw)
    assert avg.meta["training"]["ema"] == 0.5
    expected = [0.125 * a + 0.125 * b + 0.25 * c + 0.5 * d for a, b, c, d in zip(*w)]
    for got, want in zip(_weights(avg), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(_weights(avg), w[3]))
    with pytest.raises(ValueError, match=r"ema must be in \(0, 1\).*got 1.5"):
        sd.train(img, steps=1, ema=1.5, **kw)


def test_ema_checkpoint_resume_equals_uninterrupted(tmp_path):
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    kw = dict(preset="small", steps=8, patch_size=16, batch_size=2, seed=3, ema=0.7)
    full = sd.train(img, **kw)
    ck = tmp_path / "ck.sdmodel"
    sd.train(img, checkpoint=ck, checkpoint_every=100, progress=lambda s, t, logs: s < 3, **kw)
    resumed = sd.train(img, resume=ck, **kw)
    for a, b in zip(_weights(full), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    without = {k: v for k, v in kw.items() if k != "ema"}
    with pytest.raises(ValueError, match=r"trained with ema=0.7; pass ema=0.7 to resume"):
        sd.train(img, resume=ck, **without)


def test_time_per_step_measures_real_training_steps(monkeypatch):
    import scoredenoise.training as tr

    built, calls, sizes = [], [], []

    def build(*a, **kw):
        net = tr.build_network.__wrapped__(*a, **kw)
        net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
        built.append(kw)
        sizes.append(a[0])
        return net

    build.__wrapped__ = tr.build_network
    monkeypatch.setattr(tr, "build_network", build)
    sec = sd.time_per_step(preset="small", patch_size=32, batch_size=2, repeats=2)
    assert sec > 0 and np.isfinite(sec)
    # one warm-up and two timed steps of the conditioned network on antithetic pairs
    assert built[0]["sigma_input"] is True
    assert len(calls) == 3 and all(tuple(c) == (4, 1, 32, 32) for c in calls)
    assert sd.time_per_step(objective="neighbor2neighbor", preset="small", patch_size=32,
                            batch_size=2, repeats=1) > 0
    # preset=None without the data: the small network only for conditioned=True
    sd.time_per_step(conditioned=True, patch_size=16, batch_size=2, repeats=1)
    sd.time_per_step(patch_size=16, batch_size=2, repeats=1)
    assert sizes[-2:] == ["small", "default"]
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        sd.time_per_step(preset="huge")
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        sd.time_per_step(repeats=0)


def test_interactive_settings_fit_the_device():
    from scoredenoise.training import interactive_settings

    assert interactive_settings("cpu") == {"preset": "small", "steps": 2000}
    assert interactive_settings("cuda")["preset"] == "default"  # no GPU needed to ask
    with pytest.raises((ValueError, RuntimeError)):
        interactive_settings("tpu-nonsense")
