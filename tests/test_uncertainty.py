import numpy as np
import pytest
import torch

import scoredenoise as sd
from scoredenoise.network import build_network
from scoredenoise.uncertainty import score_jacobian_diagonal

from .test_model import untrained


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(),
                               torch.nn.Conv2d(4, 1, 3, padding=1)).double()


def _exact_diagonal(net, y):
    """ds_i/dy_i by autograd, one pixel at a time."""
    t = torch.from_numpy(y)[None, None].requires_grad_(True)
    out = net(t)[0, 0]
    d = np.zeros_like(y)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            (g,) = torch.autograd.grad(out[i, j], t, retain_graph=True)
            d[i, j] = g[0, 0, i, j]
    return d


def _fn(net):
    def score_fn(z):
        with torch.no_grad():
            return net(torch.from_numpy(z)[None, None])[0, 0].numpy()
    return score_fn


def test_jacobian_diagonal_against_autograd_on_a_small_network():
    net = _net()
    y = np.random.default_rng(0).normal(size=(12, 12))
    exact = _exact_diagonal(net, y)
    # one pixel a probe (spacing beyond the 5x5 receptive field): the diagonal itself
    d = score_jacobian_diagonal(_fn(net), y, eps=1e-4, spacing=5)
    np.testing.assert_allclose(d, exact, atol=1e-6)
    # spacing 2, averaged: unbiased, and its error falls with the repeats
    e1 = np.abs(score_jacobian_diagonal(_fn(net), y, eps=1e-4, spacing=2, rng=1) - exact)
    e50 = np.abs(score_jacobian_diagonal(_fn(net), y, eps=1e-4, spacing=2, repeats=50,
                                         rng=1) - exact)
    assert e50.mean() < 0.3 * e1.mean()
    # spacing 2 leaves out the nearest neighbours: better than Hutchinson (spacing 1) at
    # the same number of network passes
    h = np.abs(score_jacobian_diagonal(_fn(net), y, eps=1e-4, spacing=1, repeats=4,
                                       rng=2) - exact)
    assert e1.mean() < h.mean()


def test_gaussian_posterior_std_is_calibrated_for_a_gaussian_prior():
    # x ~ N(mu, tau^2) per pixel, y = x + N(0, sigma^2): p(y) = N(mu, tau^2 + sigma^2) and
    # the posterior of each pixel is Gaussian with variance sigma^2 tau^2 / (sigma^2 + tau^2)
    mu, tau, sigma = 100.0, 20.0, 15.0
    rng = np.random.default_rng(0)
    x = rng.normal(mu, tau, size=(256, 256))
    nm = sd.get_noise_model("gaussian", sigma=sigma)
    y = nm.sample(x, rng=1)

    def score_fn(z):
        return -(z - mu) / (tau ** 2 + sigma ** 2)

    d = score_jacobian_diagonal(score_fn, y, eps=0.1)
    np.testing.assert_allclose(d, -1 / (tau ** 2 + sigma ** 2), rtol=1e-9)
    std = np.sqrt(nm.posterior_variance(y, score_fn(y), d))
    np.testing.assert_allclose(std, sigma * tau / np.hypot(sigma, tau), rtol=1e-9)
    z = (x - nm.solve(y, score_fn(y))) / std  # error over stated std
    assert 0.98 < np.sqrt(np.mean(z ** 2)) < 1.02
    assert 0.94 < np.mean(np.abs(z) < 1.96) < 0.96


def test_poisson_gaussian_posterior_std_in_the_many_photon_limit():
    # x ~ N(mu, tau^2) per pixel at about 1000 photons (gain 2 ADU): the camera's noise is
    # then nearly Gaussian of variance v = gain * mu + read^2, p(y) nearly N(mu + offset,
    # tau^2 + v), and the posterior variance v tau^2 / (v + tau^2)
    gain, offset, read, mu, tau = 2.0, 100.0, 3.0, 2000.0, 20.0
    nm = sd.get_noise_model("poisson-gaussian", gain=gain, offset=offset, read_noise=read)
    rng = np.random.default_rng(0)
    x = rng.normal(mu, tau, size=(256, 256))
    y = nm.sample(x, rng=1)
    v = gain * mu + read ** 2

    def score_fn(z):
        return -(z - mu - offset) / (tau ** 2 + v)

    d = np.full(y.shape, -1 / (tau ** 2 + v))
    std = np.sqrt(nm.posterior_variance(y, score_fn(y), d))
    want = np.sqrt(v) * tau / np.hypot(np.sqrt(v), tau)
    # v taken at each pixel's x^ (within +-4 tau of mu), not at mu
    assert abs(std.mean() / want - 1) < 0.01 and np.abs(std / want - 1).max() < 0.12
    z = (x - nm.solve(y, score_fn(y))) / std
    assert 0.97 < np.sqrt(np.mean(z ** 2)) < 1.03
    assert 0.94 < np.mean(np.abs(z) < 1.96) < 0.96
    # plumbing through posterior_std, with a trained-like model on this camera's data
    m = untrained()
    s = sd.posterior_std(y[:32, :32].astype(np.float32), m, nm, rng=0)
    assert s.shape == (32, 32) and np.all(np.isfinite(s))


def test_posterior_std_of_a_model_and_its_limits():
    m = untrained()
    y = np.random.default_rng(0).normal(50, 10, size=(32, 32)).astype(np.float32)
    g = sd.get_noise_model("gaussian", sigma=10.0)
    s = sd.posterior_std(y, m, g, spacing=2, rng=0)  # the fixed sigma_a of this network
    assert s.shape == y.shape and np.all(np.isfinite(s)) and np.all(s >= 0)
    # never more than the total noise std (the prior can only narrow it), bar the clip
    total = np.hypot(10.0, m.smoothing_sigma(0))
    assert s.max() <= total * 1.5
    gam = sd.posterior_std(np.abs(y) + 1, m, sd.get_noise_model("gamma"), rng=0)
    assert np.all(np.isfinite(gam)) and np.all(gam >= 0)  # every model without a kernel
    for name in ("gaussian-correlated", "poisson-correlated+gaussian", "gamma-correlated",
                 "gaussian-signal-correlated"):  # and every correlated model (probed via B)
        c = sd.posterior_std(np.abs(y) + 1, m, sd.get_noise_model(name), rng=0)
        assert c.shape == y.shape and np.all(np.isfinite(c)) and np.all(c > 0), name
    gc = sd.get_noise_model("gaussian-correlated")
    with pytest.raises(NotImplementedError, match="gaussian-correlated: the posterior variance "
                                                  "of correlated noise needs the score's "
                                                  "Jacobian around each pixel.*posterior_std "
                                                  "estimates it.*e.g. gaussian\\)"):
        gc.posterior_variance(y, y, y)
    with pytest.raises(ValueError, match="one 2-D plane"):
        sd.posterior_std(y[None], m, g)
    # a direct denoiser and a 3D network are refused with the reason (a denoiser's output
    # was taken for a score)
    with pytest.raises(ValueError, match="needs a score model; this one is a direct denoiser"):
        sd.posterior_std(y, untrained(kind="denoiser"), g)
    with pytest.raises(ValueError, match="takes 2D score models so far, got a 3D one"):
        sd.posterior_std(y, untrained(dims=3), g)
    with pytest.raises(ValueError, match="spacing must be an integer >= 1, got 0"):
        score_jacobian_diagonal(lambda z: z, y, eps=0.1, spacing=0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        score_jacobian_diagonal(lambda z: z, y, eps=0)


def test_the_stated_std_has_a_floor_where_the_estimate_claims_certainty():
    """Where sigma^2 (1 + sigma^2 ds/dy) is estimated at or below 0 the map would claim
    certainty; the std is floored at ``floor`` times the noise's std at the result (default
    0.05 for a sigma-conditioned network, 0.2 for the unconditioned one), never 0 for a
    camera's pixels below the offset."""
    m = untrained()
    y = np.random.default_rng(0).normal(50, 10, size=(32, 32)).astype(np.float32)
    g = sd.get_noise_model("gaussian", sigma=10.0)
    total = float(np.hypot(10.0, m.smoothing_sigma(0)))
    bare = sd.posterior_std(y, m, g, rng=0, floor=0.0)
    for f in (0.05, 1.2):
        np.testing.assert_allclose(sd.posterior_std(y, m, g, rng=0, floor=f),
                                   np.maximum(bare, f * total), rtol=1e-5)
    assert not m.conditioned
    np.testing.assert_array_equal(sd.posterior_std(y, m, g, rng=0),
                                  sd.posterior_std(y, m, g, rng=0, floor=0.2))
    torch.manual_seed(0)
    mc = sd.ScoreModel(build_network("small", sigma_input=True).eval(), offset=[10.0],
                       scale=[100.0], axes="YX", meta={"sigma_a_default": 0.03})
    np.testing.assert_array_equal(sd.posterior_std(y, mc, g, rng=0, sigma_a=0.03),
                                  sd.posterior_std(y, mc, g, rng=0, sigma_a=0.03, floor=0.05))
    assert (sd.posterior_std(y, m, g, rng=0, floor=1.2) > bare).mean() > 0.5
    cam = sd.get_noise_model("poisson-gaussian", gain=4.0, offset=100.0, read_noise=2.0)
    dark = cam.sample(np.zeros((32, 32)), rng=0).astype(np.float32)  # half below the offset
    assert (dark < 100).mean() > 0.3
    assert sd.posterior_std(dark, m, cam, rng=0).min() >= 0.2 * 2.0 * (1 - 1e-5)


def test_forward_differences_from_the_score_and_the_window():
    net = _net()
    y = np.random.default_rng(0).normal(size=(12, 12))
    exact = _exact_diagonal(net, y)
    fn = _fn(net)
    d = score_jacobian_diagonal(fn, y, eps=1e-5, spacing=5, score=fn(y))
    np.testing.assert_allclose(d, exact, atol=1e-4)  # one pass a probe, same answer
    m = untrained()
    img = np.random.default_rng(1).normal(50, 10, size=(32, 32)).astype(np.float32)
    g = sd.get_noise_model("gaussian", sigma=10.0)
    raw = sd.posterior_std(img, m, g, window=1, rng=0)
    smooth = sd.posterior_std(img, m, g, window=5, rng=0)
    assert smooth.std() < raw.std()  # the averaged diagonal varies less
    with pytest.raises(ValueError, match="window must be an odd integer >= 1, got 4"):
        sd.posterior_std(img, m, g, window=4)


def _exact_posterior(nm, y, scale):
    """The exact score of p(y), its derivative and the exact posterior mean and variance of
    x, by quadrature, for pixels of a known prior (two Gaussian bumps at 0.6 and 1.4 x
    ``scale``) under ``nm``'s own likelihood."""
    xs = np.linspace(0.01, 3, 3000) * scale
    w = np.exp(-0.5 * ((xs - 0.6 * scale) / (0.1 * scale)) ** 2) + \
        np.exp(-0.5 * ((xs - 1.4 * scale) / (0.2 * scale)) ** 2)
    w /= w.sum()
    x_t = torch.tensor(xs[None, :], dtype=torch.float64)

    def at(yv):
        y_t = torch.tensor(yv[:, None], dtype=torch.float64).expand(-1, len(xs))
        lw = nm._log_prob(x_t.expand_as(y_t), y_t).numpy() + np.log(w)[None]
        p = np.exp(lw - lw.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean = (p * xs).sum(1)
        return (p * nm._score(x_t.expand_as(y_t), y_t).numpy()).sum(1), mean, \
            (p * (xs - mean[:, None]) ** 2).sum(1)

    s, mean, var = at(y)
    h = 1e-3 * np.maximum(np.abs(y), 1.0)
    ds = (at(y + h)[0] - at(y - h)[0]) / (2 * h)
    rng = np.random.default_rng(0)
    return s, ds, mean, var, rng.choice(xs, 2000, p=w)


@pytest.mark.parametrize("name,params,scale,median,spread", [
    ("gaussian", {"sigma": 15.0}, 100.0, (0.999, 1.001), (0.999, 1.001)),  # exact
    ("gamma", {"alpha": 26.0}, 100.0, (0.98, 1.03), (0.75, 1.2)),  # exponential family
    ("poisson", {"lam": 1.0}, 1000.0, (0.98, 1.02), (0.95, 1.05)),  # many counts
    ("rayleigh", {"sigma": 0.3}, 100.0, (0.95, 1.1), (0.7, 1.35)),  # local Gaussian
])
def test_posterior_variance_against_the_exact_posterior(name, params, scale, median, spread):
    """With the exact score of a known prior, the stated std against the exact posterior
    std, pixel by pixel: exact for Gaussian noise, close for the others (each model's
    method in its docstring; gamma was 0.95 median, 0.77-1.42 for 80 % of pixels, in the
    local Gaussian approximation that its exponential family replaced)."""
    nm = sd.get_noise_model(name, **params)
    rng = np.random.default_rng(1)
    _, _, _, _, x = _exact_posterior(nm, np.ones(1), scale)
    y = np.asarray(nm.sample(x, rng=rng), np.float64)
    s, ds, _, var, _ = _exact_posterior(nm, y, scale)
    ratio = np.sqrt(nm.posterior_variance(y.astype(np.float32), s, ds) / var)
    assert median[0] <= np.median(ratio) <= median[1]
    assert spread[0] <= np.percentile(ratio, 10) and np.percentile(ratio, 90) <= spread[1]


def _exact_sandwich(net, y, lg):
    """diag(B^T J B) from the network's whole Jacobian (autograd) and B, B^T as matrices."""
    n = y.size
    jac = torch.autograd.functional.jacobian(
        lambda t: net(t.reshape((1, 1) + y.shape)).reshape(-1),
        torch.from_numpy(y).reshape(-1)).numpy()
    unit = np.eye(n).reshape((n,) + y.shape)
    b = np.stack([lg.b(e).ravel() for e in unit], 1)
    bt = np.stack([lg.bt(e).ravel() for e in unit], 1)
    return np.diag(bt @ jac @ b).reshape(y.shape)


def test_sandwich_diagonal_against_autograd_on_a_small_network():
    """Correlated noise needs diag(B^T J B), B = Sigma G^-T spreading a probe over the
    kernel's footprint: exact with a lattice beyond B^T J B's reach, unbiased at spacing 2."""
    net = _net()
    y = np.random.default_rng(0).normal(size=(26, 26))
    lg = sd.get_noise_model("gaussian-correlated", sigma=1.0,
                            white_sigma=0.5).local_gaussian(y, np.zeros_like(y))
    exact = _exact_sandwich(net, y, lg)
    assert np.abs(exact).mean() > 0.05  # not a trivial case
    # reach: the 5x5 network and Sigma = A^T A + w^2 (5x5) on each side: 13 pixels apart
    d = score_jacobian_diagonal(_fn(net), y, eps=1e-5, spacing=13, left=lg.bt, right=lg.b)
    np.testing.assert_allclose(d, exact, atol=1e-6)
    # the diagonal of J alone (no operators) is not the answer
    plain = score_jacobian_diagonal(_fn(net), y, eps=1e-5, spacing=13)
    assert np.abs(plain - exact).mean() > 0.5 * np.abs(exact).mean()
    e1 = np.abs(score_jacobian_diagonal(_fn(net), y, eps=1e-5, spacing=2, rng=1,
                                        left=lg.bt, right=lg.b) - exact)
    e30 = np.abs(score_jacobian_diagonal(_fn(net), y, eps=1e-5, spacing=2, repeats=30,
                                         rng=1, left=lg.bt, right=lg.b) - exact)
    assert e30.mean() < 0.3 * e1.mean()


@pytest.mark.parametrize("name, params", [
    ("gaussian-correlated", {"sigma": 30.0, "white_sigma": 5.0}),
    # y = A z + N(0, 3^2), z ~ Poisson(x) at about 100 counts: nearly Gaussian
    ("poisson-correlated+gaussian", {"lam": 1.0, "sigma": 3.0}),
])
def test_correlated_posterior_std_is_calibrated_for_a_gaussian_prior(name, params):
    # x ~ N(mu, tau^2) per pixel, y = G x + n, n ~ N(0, Sigma) with G, Sigma circulant: p(y)
    # is Gaussian, its score an FFT filter, and Cov[x | y] circulant with a known diagonal
    mu, tau = 100.0, 20.0
    nm = sd.get_noise_model(name, **params)
    op = nm.base.operator if name.endswith("+gaussian") else nm.operator
    rng = np.random.default_rng(0)
    x = rng.normal(mu, tau, size=(128, 128))
    y = nm.sample(x, rng=1)
    if name == "gaussian-correlated":
        var_y = lambda h: tau ** 2 + nm._spectrum(h)  # noqa: E731
        post = lambda h: tau ** 2 * nm._spectrum(h) / var_y(h)  # noqa: E731
    else:
        v = mu / params["lam"]
        var_y = lambda h: (tau ** 2 + v) * (h * h.conj()).real + params["sigma"] ** 2  # noqa: E731
        post = lambda h: tau ** 2 - tau ** 4 * (h * h.conj()).real / var_y(h)  # noqa: E731

    def score_fn(z):
        return -op.filter(np.asarray(z, np.float64) - mu, lambda f, h: f / var_y(h))

    delta = np.zeros(y.shape)
    delta[0, 0] = 1.0
    exact = float(np.sqrt(op.filter(delta, lambda f, h: f * post(h))[0, 0]))
    s = score_fn(y)
    lg = nm.local_gaussian(y, s)
    d = score_jacobian_diagonal(score_fn, y, eps=0.3, spacing=2, repeats=2, score=s, rng=0,
                                left=lg.bt, right=lg.b)
    from scoredenoise.uncertainty import _box_mean
    std = np.sqrt(lg.variance(lg.smoothed(d, lambda a: _box_mean(a, 5))))
    assert abs(np.median(std) / exact - 1) < 0.01
    # without the operators (the element-wise formula on the diagonal of J): far off
    naive = np.sqrt(np.clip(lg.c + lg.c ** 2 * score_jacobian_diagonal(
        score_fn, y, eps=0.3, score=s, rng=0), 0, None))
    assert abs(np.median(naive) / exact - 1) > 0.05
    z = (x - nm.solve(y, s)) / std
    assert 0.97 < np.sqrt(np.mean(z ** 2)) < 1.03
    assert 0.94 < np.mean(np.abs(z) < 1.96) < 0.96


def test_local_gaussian_of_an_element_wise_model_is_its_formula():
    """For element-wise noise B = v / gain, and averaging (B^T J B)_ii / C_ii^2 is averaging
    J_ii: the correlated path reduces to the element-wise models' v (1 + v J) / gain^2."""
    from scoredenoise.uncertainty import _box_mean
    rng = np.random.default_rng(0)
    for nm in (sd.get_noise_model("poisson-gaussian", gain=3.0, offset=10.0, read_noise=2.0),
               sd.get_noise_model("rayleigh", sigma=0.3)):
        y = np.abs(rng.normal(200, 30, size=(32, 32))).astype(np.float32)
        s = (-(y - 200) / 2000).astype(np.float32)
        jd = rng.uniform(-1 / 900, -1 / 3000, size=y.shape)
        lg = nm.local_gaussian(y, s)
        g = nm.mean_gain
        v = nm.variance_at_result(y, s)
        np.testing.assert_allclose(lg.c, v / g ** 2)
        np.testing.assert_allclose(lg.b(np.ones(y.shape)), v / g)
        sandwich = v ** 2 * jd / g ** 2
        np.testing.assert_allclose(
            lg.variance(lg.smoothed(sandwich, lambda a: _box_mean(a, 5))),
            nm.posterior_variance(y, s, _box_mean(jd, 5)), rtol=1e-9)
    with pytest.raises(sd.noise.NoiseModelError, match="same shape"):
        nm.local_gaussian(y, s[:4])


def test_a_map_computed_window_by_window_equals_the_whole_planes():
    """Large planes are mapped window by window (bounded memory); the probes are a hash of
    each pixel's coordinates, so the windows' maps join into the whole plane's."""
    from scoredenoise.uncertainty import probe_signs
    m = untrained()
    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, size=(150, 170)).astype(np.float32)
    g = sd.get_noise_model("gaussian", sigma=10.0)
    whole = sd.posterior_std(y, m, g, rng=3, tile=None)
    tiled = sd.posterior_std(y, m, g, rng=3, tile=32)  # 5 x 6 windows
    np.testing.assert_allclose(tiled, whole, rtol=2e-4)
    assert np.abs(tiled - sd.posterior_std(y, m, g, rng=4, tile=None)).max() > 1e-3  # seeded
    cam = sd.get_noise_model("poisson-gaussian", gain=2.0, offset=10.0, read_noise=3.0)
    np.testing.assert_allclose(sd.posterior_std(y, m, cam, rng=1, tile=48),
                               sd.posterior_std(y, m, cam, rng=1, tile=None), rtol=2e-4)
    # a correlated model: equal but for the periodic FFT's wrap at the windows' edges
    gc = sd.get_noise_model("gaussian-correlated", sigma=10.0)
    big = rng.normal(50, 10, size=(200, 200)).astype(np.float32)
    a, b = (sd.posterior_std(big, m, gc, rng=1, tile=t) for t in (64, None))
    assert np.median(np.abs(a / b - 1)) < 1e-3
    # the signs: +-1, half each, the same for a pixel whichever window asks
    full = probe_signs(7, 2, np.arange(40), np.arange(50))
    np.testing.assert_array_equal(probe_signs(7, 2, np.arange(10, 30), np.arange(5, 50)),
                                  full[10:30, 5:50])
    assert set(np.unique(full)) == {-1.0, 1.0} and abs(full.mean()) < 0.1
    assert not np.array_equal(full, probe_signs(7, 3, np.arange(40), np.arange(50)))
    with pytest.raises(ValueError, match="tile must be a positive integer"):
        sd.posterior_std(y, m, g, tile=0)
