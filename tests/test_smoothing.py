"""sigma-conditioned score networks: what they learn, and where they are evaluated (SURE)."""

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise import _axes
from scoredenoise.api import effective_noise_model
from scoredenoise.network import build_network
from scoredenoise.smoothing import (
    FACTORS,
    SigmaA,
    factor_risks,
    sample_image,
    score_factor,
    search_factors,
    select_sigma_a,
    sure_risks,
)

MU, TAU, NOISE, SCALE = 100.0, 20.0, 15.0, 100.0


class OracleModel:
    """A conditioned 'score model' whose score at sigma_a is the exact score of a Gaussian
    prior N(MU, TAU^2) under Gaussian noise, smoothed by sigma_a, plus an error that grows as
    sigma_a falls, as a trained network's does: a fixed random field times ``err / sigma_a``.
    Its risk then has an interior minimum that the test can compute exactly."""

    dims, conditioned, sigma_range, sigma_a_default = 2, True, (0.01, 0.5), 0.1
    scale, extra_noise = np.array([SCALE]), 0.0

    def __init__(self, err):
        self.err = err

    def resolve_axes(self, axes, ndim):
        return _axes.check_axes(axes, ndim, 2)

    def smoothing_sigma(self, channel=0, sigma_a=None):
        return float(sigma_a) * SCALE

    def predict(self, y, *, axes=None, sigma_a=None, **kw):
        smooth = (sigma_a * SCALE) ** 2
        xi = np.random.default_rng(7).normal(size=np.shape(y))  # the same field every call
        return (-(y - MU) / (TAU ** 2 + NOISE ** 2 + smooth)
                + self.err / sigma_a * xi).astype(np.float32)


def _mse_of(model, y, x, sig, nm, factor=1.0):
    s = factor * model.predict(y, sigma_a=sig)
    est = np.asarray(nm.plus_gaussian(model.smoothing_sigma(0, sig)).solve(y, s), np.float64)
    return float(np.mean((est - x) ** 2))


def test_sure_tracks_the_true_risk_and_picks_its_minimum():
    rng = np.random.default_rng(0)
    x = rng.normal(MU, TAU, (2, 1, 128, 128))
    y = (x + rng.normal(0, NOISE, x.shape)).astype(np.float32)
    model = OracleModel(err=2e-4)
    nm = sd.get_noise_model("gaussian", sigma=NOISE)
    sigmas = np.exp(np.linspace(np.log(0.01), np.log(0.5), 12))
    risks = sure_risks(model, y, sigmas, [nm])
    true = np.array([_mse_of(model, y[:, 0], x[:, 0], s, nm) for s in sigmas])
    # unbiased: within a few per cent of the true mean squared error at every sigma_a
    np.testing.assert_allclose(risks, true, rtol=0.05)
    # the minimum is inside the range (the test's premise) and SURE finds it
    assert 0 < int(np.argmin(true)) < len(sigmas) - 1
    fine = np.exp(np.linspace(np.log(0.01), np.log(0.5), 200))
    best = fine[np.argmin([_mse_of(model, y[:, 0], x[:, 0], s, nm) for s in fine])]
    # (the score at factor 1; with the factor chosen too, below)
    picked = select_sigma_a(model, y[:, 0], nm, axes="SYX", grid=8, factor=False)
    assert abs(np.log(picked / best)) < np.log(1.3)
    # a model with no score error needs no smoothing: the low end of the range is picked
    # (below 1 data unit against noise of 15 the risks differ by less than SURE's spread)
    assert select_sigma_a(OracleModel(err=0.0), y[:, 0], nm, axes="SYX", factor=False) < 0.025


def test_selection_estimates_the_noise_when_none_is_given():
    rng = np.random.default_rng(1)
    x = rng.normal(MU, TAU, (1, 1, 160, 160))
    y = np.round(x + rng.normal(0, NOISE, x.shape)).astype(np.float32)  # integer data
    model = OracleModel(err=2e-4)
    nm = sd.get_noise_model("gaussian", sigma=NOISE)
    given = select_sigma_a(model, y[0, 0], nm)
    estimated = select_sigma_a(model, y[0, 0])  # poisson-gaussian, estimated on the image
    # the risk is flat near its minimum: what counts is the error of the result
    assert _mse_of(model, y[:, 0], x[:, 0], estimated, nm) < \
        1.03 * _mse_of(model, y[:, 0], x[:, 0], given, nm)


def test_sample_image_reads_windows_of_evenly_spaced_planes():
    stack = np.arange(10 * 300 * 200, dtype=np.float32).reshape(10, 300, 200)
    s = sample_image(stack, "ZYX", 2, max_pixels=4 * 100 * 100)
    assert s.shape[:2] == (4, 1) and s.shape[2] * s.shape[3] <= 100 * 100
    assert 0.7 < s.shape[2] / s.shape[3] < 1.4  # square-ish windows
    # planes 0, 3, 6, 9, centred windows
    np.testing.assert_array_equal(s[:, 0, 0, 0] // (300 * 200), [0, 3, 6, 9])
    row0 = (s[0, 0, 0, 0] % (300 * 200)) // 200
    assert abs(row0 - (300 - s.shape[2]) // 2) <= 1


def _gaussian_pixels(n=4, size=64, seed=0):
    """i.i.d. pixels N(MU, TAU^2): the score of the data smoothed by any Gaussian is known,
    -(y - MU) / (TAU^2 + smoothing^2)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(MU, TAU, (size, size)).astype(np.float32) for _ in range(n)]


@pytest.mark.slow
def test_conditioned_network_learns_the_score_at_each_sigma():
    """One network, two smoothings: the learned score's slope in y follows
    1 / (TAU^2 + (sigma_a scale)^2) at both, a 4-5x change an unconditioned network cannot
    give."""
    imgs = _gaussian_pixels()
    m = sd.train(imgs, preset="small", steps=400, patch_size=32, batch_size=8, seed=0,
                 sigma_a=(0.02, 0.4))
    assert m.conditioned and m.extra_noise == 0.0
    y = _gaussian_pixels(1, 96, seed=5)[0]
    core = (slice(16, -16), slice(16, -16))
    for sig in (0.03, 0.2):
        s = np.asarray(m.score(y, sigma_a=sig))
        slope = np.polyfit(y[core].ravel() - MU, s[core].ravel(), 1)[0]
        want = -1.0 / (TAU ** 2 + (sig * float(m.scale[0])) ** 2)
        assert slope == pytest.approx(want, rel=0.2), (sig, slope, want)


def test_conditioned_loss_weighted_by_sigma_trains_every_level():
    """The unweighted AR-DAE loss counts the score's error at sigma_a by sigma_a^2: over a
    50x range the small sigma_a went untrained (relative error 0.47 at 0.01 after 150
    steps, against 0.02 with the 1 / sigma_a^2 weight, which the default "auto" weighting
    picks for continuous data like these)."""
    rng = np.random.default_rng(0)
    imgs = [rng.normal(0.5, 0.1, (64, 64)).astype(np.float32) for _ in range(4)]
    m = sd.train(imgs, preset="small", steps=150, patch_size=32, batch_size=8, seed=0,
                 sigma_a=(0.01, 0.5))
    assert m.meta["training"]["sigma_weighting"] == "score"
    y = np.random.default_rng(5).normal(0.5, 0.1, (96, 96)).astype(np.float32)
    core = (slice(16, -16), slice(16, -16))
    for sig in (0.01, 0.03, 0.1):
        s = np.asarray(m.score(y, sigma_a=sig))[core]
        want = -(y[core] - 0.5) / (0.1 ** 2 + (sig * float(m.scale[0])) ** 2)
        rel = float(np.mean((s - want) ** 2) / np.mean(want ** 2))
        assert rel < 0.1, (sig, rel)


def test_score_carries_its_sigma_a_into_every_solve():
    imgs = _gaussian_pixels(2, 48)
    m = sd.train(imgs, preset="small", steps=6, patch_size=16, batch_size=2, seed=0,
                 conditioned=True)
    y = imgs[0]
    s = m.score(y, sigma_a=0.05)
    assert isinstance(s, sd.Score) and s.sigma_a == 0.05
    assert s[:10].sigma_a == 0.05  # slices keep it
    g = sd.get_noise_model("gaussian", sigma=NOISE)
    x = sd.denoise(y, m, g, score=s)
    want = effective_noise_model(m, g, 0, 0.05).solve(y, np.asarray(s))
    np.testing.assert_allclose(x, want, rtol=1e-6)
    # another noise model, same score: the same sigma_a removed, no network
    p = sd.get_noise_model("gaussian", sigma=2 * NOISE)
    np.testing.assert_allclose(sd.denoise(y, m, p, score=s),
                               effective_noise_model(m, p, 0, 0.05).solve(y, np.asarray(s)),
                               rtol=1e-6)
    # a plain array is taken at the sigma_a given, else at the model's default
    plain = np.asarray(s)
    np.testing.assert_allclose(sd.denoise(y, m, g, score=plain, sigma_a=0.05), x, rtol=1e-6)
    np.testing.assert_allclose(
        sd.denoise(y, m, g, score=plain),
        effective_noise_model(m, g, 0, m.sigma_a_default).solve(y, plain), rtol=1e-6)
    # "auto" chooses per image and noise model, within the training range
    lo, hi = m.sigma_range
    auto = m.score(y, noise_model=g)
    assert lo <= auto.sigma_a <= hi
    assert lo <= m.sigma_a_default <= hi


def test_sigma_a_errors_name_the_fix():
    imgs = _gaussian_pixels(1, 48)
    m = sd.train(imgs, preset="small", steps=2, patch_size=16, batch_size=2, seed=0,
                 conditioned=True)
    with pytest.raises(ValueError, match="sigma_a must be > 0 or 'auto', got -0.1"):
        m.score(imgs[0], sigma_a=-0.1)
    old = sd.train(imgs, preset="small", steps=2, patch_size=16, batch_size=2, seed=0,
                   conditioned=False)
    assert not old.conditioned and old.sigma_a_default == old.sigma_a_final == 0.02
    with pytest.raises(ValueError, match="not sigma-conditioned: its score is fixed"):
        old.score(imgs[0], sigma_a=0.1)
    assert old.score(imgs[0]).sigma_a == 0.02
    with pytest.raises(ValueError, match="low < high"):
        sd.train(imgs, preset="small", steps=2, patch_size=16, sigma_a=(0.2, 0.1))


def test_conditioned_model_files_round_trip(tmp_path):
    imgs = _gaussian_pixels(1, 48)
    m = sd.train(imgs, preset="small", steps=4, patch_size=16, batch_size=2, seed=0,
                 sigma_a=(0.02, 0.3))
    m2 = sd.load_model(m.save(tmp_path / "c.sdmodel"))
    assert m2.conditioned and m2.sigma_range == (0.02, 0.3)
    assert m2.sigma_a_default == m.sigma_a_default
    assert m2.network.config.sigma_modulation
    assert any(float(h.weight.abs().max()) > 0 for h in m2.network.modulation)  # trained
    np.testing.assert_array_equal(m2.score(imgs[0], sigma_a=0.1), m.score(imgs[0], sigma_a=0.1))
    # a file of a network conditioned through its input channel only (before 0.3) loads
    old = sd.ScoreModel(build_network("small", sigma_input=True, sigma_modulation=False),
                        offset=[0.0], scale=[1.0], meta={"sigma_range": [0.02, 0.3]})
    old2 = sd.load_model(old.save(tmp_path / "old.sdmodel"))
    assert old2.conditioned and not old2.network.config.sigma_modulation
    np.testing.assert_array_equal(old2.score(imgs[0], sigma_a=0.1),
                                  old.score(imgs[0], sigma_a=0.1))


@pytest.mark.slow
def test_photon_lattice_data_trained_and_solved_beat_the_noisy_frame():
    """About two photons a pixel, 10 ADU each, read noise 1 ADU: the data are a comb of
    counts (FMD's zebrafish frame, where the unconditioned network with the previous
    smoothing and the first-order solve gave -2 dB). The defaults (photon smoothing, a
    sigma-conditioned network evaluated at the sigma_a SURE picks, the exact solve) must beat
    the noisy frame by 3 dB (measured 17.1 -> 24.0 dB, about 1 min; the previous defaults,
    unconditioned with 1 ADU of smoothing, gave -7.8 dB here)."""
    from importlib.resources import files

    from skimage.io import imread
    avg = imread(str(files("scoredenoise") / "data" / "fmd_bpae_b_fov1_avg50.png"))
    clean = 10.0 * 6.0 * avg[:256, :256].astype(np.float64) / float(avg.max())  # ADU
    cam = sd.get_noise_model("poisson-gaussian", gain=10.0, offset=5.0, read_noise=1.0)
    rng = np.random.default_rng(0)
    frames = [cam.sample(clean, rng=rng).round().astype(np.uint16) for _ in range(3)]
    model = sd.train(frames[:2], preset="small", steps=300, patch_size=64, batch_size=8,
                     seed=0)
    y = frames[2]
    x = sd.denoise(y, model, cam)

    def psnr(a):
        return 10 * np.log10(np.ptp(clean) ** 2 / np.mean((a - 5.0 - clean) ** 2))

    assert psnr(x) - psnr(y) > 3.0, (psnr(y), psnr(x))


def test_sure_is_unbiased_for_noise_with_a_mean_of_its_own():
    """Rayleigh noise has E[y] = 1.38 x (sigma 0.3): SURE must centre y on x (divide by the
    model's mean gain), or it counts the bias as signal and picks too much smoothing (Set12
    row 9: 26.54 dB at its picks against 28.83 at a fixed sigma_a). With a fixed estimator
    (the solve of a zero score) its risk equals the true squared error."""
    from scoredenoise.smoothing import sure_risks

    class Zero:  # a score model whose network outputs 0, with no smoothing
        dims = 2

        def predict(self, y, **kw):
            return np.zeros_like(y)

        def smoothing_sigma(self, c, sig=None):
            return 0.0

    rng = np.random.default_rng(0)
    x = rng.uniform(20, 200, (1, 1, 96, 96))
    ray = sd.get_noise_model("rayleigh", sigma=0.3)
    y = np.asarray(ray.sample(x, rng), np.float32)
    est = np.asarray(ray.solve(y[:, 0], np.zeros_like(y[:, 0])), np.float64)
    true = float(np.mean((est - x[:, 0]) ** 2))
    (risk,) = sure_risks(Zero(), y, [0.1], [ray])
    assert risk == pytest.approx(true, rel=0.1)
    g = sd.get_noise_model("gaussian", sigma=20.0)  # mean zero: unchanged
    yg = (x + rng.normal(0, 20, x.shape)).astype(np.float32)
    (risk_g,) = sure_risks(Zero(), yg, [0.1], [g])
    assert risk_g == pytest.approx(float(np.mean((yg - x) ** 2)), rel=0.1)


def test_factor_of_the_score_makes_the_smoothed_solve_the_posterior_mean():
    """Solving with the score of the data smoothed by sigma_a shrinks more than the posterior
    mean; for a Gaussian prior the factor v (tau^2 + v + s^2) / ((tau^2 + v) (v + s^2)) of
    the score makes it exact. SURE picks that factor, and with it the result reaches the
    MMSE, which the plain solve (factor 1) misses."""
    rng = np.random.default_rng(3)
    x = rng.normal(MU, TAU, (2, 1, 128, 128))
    y = (x + rng.normal(0, NOISE, x.shape)).astype(np.float32)
    model = OracleModel(err=0.0)
    nm = sd.get_noise_model("gaussian", sigma=NOISE)
    sig, v, t2 = 0.2, NOISE ** 2, TAU ** 2
    s2 = (sig * SCALE) ** 2
    exact = v * (t2 + v + s2) / ((t2 + v) * (v + s2))  # 0.59
    risks = factor_risks(model, y, sig, [nm], FACTORS)
    picked = FACTORS[int(np.argmin(risks))]
    assert abs(picked - exact) <= 0.05
    mmse = t2 * v / (t2 + v)  # 144
    s = model.predict(y[:, 0], sigma_a=sig)
    solve = nm.plus_gaussian(model.smoothing_sigma(0, sig)).solve

    def mse(f):
        return float(np.mean((np.asarray(solve(y[:, 0], f * s), np.float64) - x[:, 0]) ** 2))

    assert mse(picked) < 1.03 * mmse
    assert mse(1.0) > 1.2 * mmse  # 1.27 in theory
    # the selection returns it with sigma_a, as a float that carries it
    chosen = select_sigma_a(OracleModel(err=2e-4), y[:, 0], nm, axes="SYX")
    assert isinstance(chosen, SigmaA) and isinstance(chosen, float)
    assert chosen.factor in FACTORS and chosen.factor < 1.0
    plain = select_sigma_a(OracleModel(err=2e-4), y[:, 0], nm, axes="SYX", factor=False)
    assert not isinstance(plain, SigmaA)


def test_sigma_a_and_its_factor_are_chosen_together():
    """The risk is minimised over sigma_a and the factor together (each sigma_a at its best
    factor), not sigma_a at factor 1 and then the factor there: a larger sigma_a, whose
    over-shrinkage the factor undoes, carries less of the score's error (which grows as
    sigma_a falls), so the joint choice comes closer to the MMSE."""
    rng = np.random.default_rng(3)
    x = rng.normal(MU, TAU, (2, 1, 128, 128))
    y = (x + rng.normal(0, NOISE, x.shape)).astype(np.float32)
    model = OracleModel(err=1e-3)
    nm = sd.get_noise_model("gaussian", sigma=NOISE)

    def mse(sig, f):
        return _mse_of(model, y[:, 0], x[:, 0], sig, nm, f)

    mmse = TAU ** 2 * NOISE ** 2 / (TAU ** 2 + NOISE ** 2)
    chosen = select_sigma_a(model, y[:, 0], nm, axes="SYX")
    plain = select_sigma_a(model, y[:, 0], nm, axes="SYX", factor=False)
    two_stage = FACTORS[int(np.argmin(factor_risks(model, y, plain, [nm], FACTORS)))]
    assert float(chosen) > plain  # more smoothing, undone by the factor
    assert mse(float(chosen), chosen.factor) < 0.98 * mse(plain, two_stage)  # 1.02 / 1.05
    assert mse(float(chosen), chosen.factor) < 1.03 * mmse


def test_sigma_a_with_a_factor_is_a_float_that_keeps_it():
    import json
    import pickle

    sig = SigmaA(0.06, factor=0.85)
    assert sig == 0.06 and sig * 2 == 0.12 and sig.factor == 0.85
    assert repr(sig) == "SigmaA(0.06, factor=0.85)"
    back = pickle.loads(pickle.dumps(sig))
    assert isinstance(back, SigmaA) and back.factor == 0.85
    assert json.loads(json.dumps({"sigma_a": sig})) == {"sigma_a": 0.06}
    assert score_factor(sig) == 0.85 and score_factor(0.06) == 1.0 and score_factor(None) == 1.0
    with pytest.raises(ValueError, match="factor must be a finite number > 0, got -1.0"):
        SigmaA(0.06, factor=-1)


def test_the_factor_reaches_every_path_that_uses_the_score(tmp_path):
    """model.score and denoise (in memory, lazily, to a file) use the score at the factor
    chosen with sigma_a, and the result records it; posterior_std keeps the plain score."""
    import dask.array as da

    from scoredenoise.io import read_image

    imgs = _gaussian_pixels(2, 64)
    m = sd.train(imgs, preset="small", steps=4, patch_size=16, batch_size=2, seed=0,
                 conditioned=True)
    y = imgs[0]
    g = sd.get_noise_model("gaussian", sigma=NOISE)
    sig = SigmaA(0.05, factor=0.7)
    s = m.score(y, sigma_a=sig)
    np.testing.assert_allclose(np.asarray(s), 0.7 * np.asarray(m.score(y, sigma_a=0.05)),
                               rtol=1e-6)
    assert s.sigma_a.factor == 0.7 and s[:5].sigma_a.factor == 0.7
    want = effective_noise_model(m, g, 0, 0.05).solve(y, np.asarray(s))
    x = sd.denoise(y, m, g, sigma_a=sig)
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-4)
    assert np.abs(x - sd.denoise(y, m, g, sigma_a=0.05)).max() > 0.01
    lazy = sd.denoise(da.from_array(y, chunks=(32, 32)), m, g, sigma_a=sig).compute()
    np.testing.assert_allclose(lazy[8:-8, 8:-8], x[8:-8, 8:-8], rtol=1e-4, atol=1e-3)
    lazy_score = m.score(da.from_array(y, chunks=(32, 32)), sigma_a=sig)
    np.testing.assert_allclose(np.asarray(lazy_score.compute())[8:-8, 8:-8],
                               np.asarray(s)[8:-8, 8:-8], rtol=1e-4, atol=1e-6)
    res = sd.denoise_to_file(y, tmp_path / "f.tif", m, g, sigma_a=sig,
                             chunks={"Y": 32, "X": 32})
    out = read_image(res.path)
    np.testing.assert_allclose(np.asarray(out.data)[8:-8, 8:-8], x[8:-8, 8:-8], rtol=1e-4,
                               atol=1e-3)
    assert out.extra["scoredenoise"]["score_factor"] == 0.7
    assert sd.provenance(m, g, sigma_a=sig)["score_factor"] == 0.7
    assert sd.provenance(m, g, sigma_a=0.05)["score_factor"] == 1.0
    # the std map is of the network's own score at that sigma_a (its calibration was
    # measured so; the factor corrects the result's shrinkage, not that variance)
    np.testing.assert_array_equal(sd.posterior_std(y, m, g, sigma_a=sig, rng=0),
                                  sd.posterior_std(y, m, g, sigma_a=0.05, rng=0))
    # "auto" chooses the factor with sigma_a
    auto = m.score(y, noise_model=g)
    assert isinstance(auto.sigma_a, SigmaA) and auto.sigma_a.factor in FACTORS


def test_selection_hears_a_cancel_between_the_factor_searches():
    """The factor searches follow the network passes of each round; a cancel given there
    stops the selection before the next search, not after the whole round."""
    from scoredenoise._progress import Cancelled

    rng = np.random.default_rng(0)
    y = (rng.normal(MU, TAU, (1, 1, 64, 64))
         + rng.normal(0, NOISE, (1, 1, 64, 64))).astype(np.float32)
    nm = sd.get_noise_model("gaussian", sigma=NOISE)
    calls = []

    def progress(done, total):
        calls.append(done)
        # the grid's 12 passes are done; stop at the second factor search
        return False if calls.count(12) >= 2 else None

    with pytest.raises(Cancelled, match="cancelled after 12"):
        select_sigma_a(OracleModel(err=2e-4), y[0, 0], nm, progress=progress)
    assert calls.count(12) == 2 and max(calls) == 12


def test_factor_search_finds_the_least_risk_with_fewer_solves():
    """The factor search evaluates 10 of the 16 factors (fewer with a risk already known)
    and finds the least risk of all 16 wherever the risk falls and then rises, whatever
    the position and shape of its minimum; an evaluation it skips is one it did not need."""
    rng = np.random.default_rng(0)
    n = len(FACTORS)
    for m in range(n):
        for _ in range(20):  # a random curve that falls to index m and rises after it
            left = np.cumsum(rng.exponential(1.0, m)[::-1])[::-1] if m else np.array([])
            right = np.cumsum(rng.exponential(1.0, n - m - 1))
            risks = np.concatenate([left, [0.0], right]) + rng.normal()
            calls = []

            def risk_of(i, risks=risks, calls=calls):
                calls.append(i)
                return float(risks[i])

            known = {10: float(risks[10])} if m % 2 else None
            i, r = search_factors(risk_of, n, known=known)
            assert (i, r) == (m, float(risks[m]))
            assert len(calls) == len(set(calls)) and len(calls) <= 10
            assert known is None or 10 not in calls
    # nothing finite: no pick
    assert search_factors(lambda i: np.inf, n) == (None, np.inf)
    # a nan among the coarse points: it keeps to the finite ones
    risks = np.linspace(1.0, 0.0, n)
    risks[6] = np.nan
    assert search_factors(lambda i: risks[i], n) == (n - 1, 0.0)


def test_selection_picks_the_grid_least_risk_factor(monkeypatch):
    """The selection's factor is the one the whole grid of factors gives at the chosen
    sigma_a (same probe, same passes), with fewer solves: at most 10 risk evaluations per
    candidate sigma_a, where the whole grid takes 17 (16 factors and factor 1 before)."""
    import scoredenoise.smoothing as sm

    rng = np.random.default_rng(5)
    x = rng.normal(MU, TAU, (2, 1, 96, 96))
    y = (x + rng.normal(0, NOISE, x.shape)).astype(np.float32)
    nm = sd.get_noise_model("gaussian", sigma=NOISE)
    calls = []
    real = sm._Probe.risk

    def counting(self, *a):
        calls.append(a[1])
        return real(self, *a)

    monkeypatch.setattr(sm._Probe, "risk", counting)
    for err in (0.0, 2e-4, 1e-3):
        calls.clear()
        model = OracleModel(err=err)
        chosen = select_sigma_a(model, y[:, 0], nm, axes="SYX")
        candidates = len(set(calls))
        assert len(calls) <= 10 * candidates  # one at factor 1, at most 9 more
        full = factor_risks(model, y, float(chosen), [nm], FACTORS)
        assert chosen.factor == FACTORS[int(np.argmin(full))]
