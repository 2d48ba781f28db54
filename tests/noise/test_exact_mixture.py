"""The exact solve of Poisson + Gaussian mixtures (``exact=True``)."""

import numpy as np
import pytest
import torch

from scoredenoise.noise import NoiseModelError, get_noise_model


def _oracle(nm, x, y, radius=2):
    """Exact marginal score and posterior mean for a prior: each pixel is one of the clean
    values in its (2r+1)^2 window, equally likely."""
    pad = np.pad(x, radius, mode="edge")
    h, w = x.shape
    k = 2 * radius + 1
    v = torch.from_numpy(np.stack([pad[i:i + h, j:j + w].ravel() for i in range(k)
                                   for j in range(k)], 1))
    yy = torch.from_numpy(y.ravel()[:, None]).expand_as(v)
    logp = torch.as_tensor(nm.log_prob(v, yy))
    wts = torch.softmax(logp, 1)
    f = torch.as_tensor(nm.score(v, yy))
    return (wts * f).sum(1).numpy(), (wts * v).sum(1).numpy()


def _mse(a, b):
    return float(np.mean((np.asarray(a) - b) ** 2))


def test_exact_solve_reaches_the_posterior_mean_where_algorithm5_fails():
    # a camera whose read noise (1 ADU) is below its gain (4 ADU per photon), as FMD's:
    # with the exact score, Algorithm 5 fails in the dark; the exact equation does not
    rng = np.random.default_rng(0)
    x = np.clip(np.linspace(-20, 120, 48), 0.05, None)[None, :].repeat(48, 0)
    x = x + 5 * np.sin(np.arange(48) / 3.0)[:, None].clip(0)
    cam = get_noise_model("poisson-gaussian", gain=4.0, offset=3.0, read_noise=1.0)
    y = np.asarray(cam.sample(x, rng=rng), np.float64)
    s, mmse = _oracle(cam, x, y)
    first = np.asarray(cam.replace(exact=False).solve(y.ravel(), s))  # Algorithm 5
    exact = np.asarray(cam.replace(exact=True).solve(y.ravel(), s))
    truth = x.ravel()
    assert _mse(exact, truth) < 1.2 * _mse(mmse, truth)
    assert _mse(first, truth) > 10 * _mse(exact, truth)


def test_exact_solution_satisfies_the_exact_equation():
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=10.0, read_noise=1.5,
                          exact=True)
    x = np.array([0.5, 3.0, 20.0, 80.0, 200.0])
    y = np.asarray(cam.sample(x, rng=1), np.float64)
    s = np.asarray(cam.score(x * 1.1, y))  # a score that some x > 0 produces exactly
    xs = np.asarray(cam.solve(y, s))
    assert np.allclose(cam.score(xs, y), s, atol=1e-6)
    assert np.allclose(cam.residual(xs, y, s), 0, atol=1e-6)  # residual of that equation
    assert np.allclose(xs, x * 1.1, rtol=1e-4)
    # below what any x >= 0 explains: x = 0 (Algorithm 5's no-root rule)
    low = np.asarray(cam.score(np.zeros_like(y), y)) - 1.0
    assert np.all(np.asarray(cam.solve(y, low)) == 0)


def test_exact_is_a_solver_choice_kept_through_smoothing():
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=10.0, read_noise=1.5,
                          exact=True)
    assert cam.plus_gaussian(2.0).exact and cam.replace(gain=3.0).exact
    assert "exact" not in cam.to_dict()["params"]
    assert get_noise_model("poisson+gaussian", lam=0.2, sigma=10.0, exact=True).exact
    with pytest.raises(NoiseModelError, match="exact=True is available where"):
        get_noise_model("gamma+gaussian", exact=True)
