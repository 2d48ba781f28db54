"""The tabulated exact solve of a count plus Gaussian noise against the per-pixel reference."""

import numpy as np
import pytest
import torch

from scoredenoise.noise import NoiseModelError, _count_table, get_noise_model


def _case(gain, read, offset, integer, n=48, seed=0):
    """A camera image of a ramp with texture and a score for which the equation has roots
    (the likelihood score at a clean image off by up to 20 %), plus some pixels without."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 220, n)[None, :] * (0.6 + 0.4 * rng.random((n, 1))) + 0.05
    cam = get_noise_model("poisson-gaussian", gain=gain, offset=offset, read_noise=read)
    y = np.asarray(cam.sample(x, rng=rng), np.float64)
    if integer:
        y = np.round(y)
    s = np.asarray(cam.score(x * rng.uniform(0.8, 1.2, x.shape), y))
    s[::7] -= 3.0 / max(read, gain) ** 2 * 20  # no root: below f(0, y)
    return cam, torch.from_numpy(y), torch.from_numpy(s)


# read noise far below, near and far above the gain (photon step), integer and float data
REGIMES = [(4.0, 0.3), (4.0, 1.0), (3.8, 2.66), (20.8, 10.0), (1.0, 10.0), (0.2, 10.0),
           (0.2, 1.0), (50.0, 0.5)]


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("gain,read", REGIMES)
def test_table_solve_equals_the_reference_newton(gain, read, integer):
    cam, y, s = _case(gain, read, 3.5, integer)
    exact = cam.replace(exact=True)
    _count_table._cache.clear()
    ref = cam._solve_exact_newton(y, s)
    fast = cam._solve_exact(y, s)
    span = float(y.max() - y.min())
    # where y - offset + read^2 s <= 0 no x >= 0 explains the score: x = 0 in both
    none = (y - 3.5 + read ** 2 * s) <= 0
    assert bool((fast[none] == 0).all() and (ref[none] == 0).all())
    root = ~none
    # and equals it within 1e-4 of the data range wherever the root is defined to that
    # precision: where an error of 1e-7 / read^2 in the score moves x by less than that.
    # Elsewhere the equation is flat in x (read noise far below the gain: y reads off the
    # count whatever the rate), and any x it leaves is a root (checked above)
    slope = (torch.as_tensor(exact.residual(ref + 1e-3, y, s)) -
             torch.as_tensor(exact.residual(ref, y, s))) / 1e-3
    defined = root & (1e-7 / read ** 2 < 1e-4 * span * slope.abs())
    if defined.any():
        assert float((fast - ref)[defined].abs().max()) <= 1e-4 * span
    if read >= gain / 2:  # away from the flat regime, nearly every root is defined
        assert float(defined.float().sum() / root.float().sum()) > 0.95
    # where it is not, the fast x solves the equation as well as the reference's, up to a
    # small part of the score's own scale (1 / read); where the equation is flat away from
    # s, neither solves it (both stop at an end of the bracket)
    flat = root & ~defined
    if flat.any():
        r_fast = torch.as_tensor(exact.residual(fast, y, s)).abs()[flat]
        r_ref = torch.as_tensor(exact.residual(ref, y, s)).abs()[flat]
        assert bool((r_fast <= r_ref + 0.05 / read).all())


def test_tables_are_reused_per_gain_and_read_noise():
    cam, y, s = _case(3.8, 1.5, 3.0, True)
    _count_table._cache.clear()
    a = cam._solve_exact(y, s)
    assert len(_count_table._cache) == 1
    b = cam._solve_exact(y, s * 1.1)  # same parameters: same table
    assert len(_count_table._cache) == 1 and not torch.equal(a, b)
    cam.replace(offset=2.0)._solve_exact(y, s)  # the offset only shifts the data: same table
    cam._solve_exact(y + 0.25, s)  # float data: same table
    assert len(_count_table._cache) == 1
    cam.replace(gain=4.0)._solve_exact(y, s)  # a new gain: a new table
    assert len(_count_table._cache) == 2


def test_exact_is_automatic_where_algorithm5_fails():
    cam = get_noise_model("poisson-gaussian", gain=3.8, offset=3.0, read_noise=1.0)
    assert cam.exact is None and cam.uses_exact  # read noise below the photon step
    assert not cam.replace(read_noise=20.0).uses_exact  # 5 steps wide: Algorithm 5
    assert cam.replace(read_noise=20.0, exact=True).uses_exact
    assert not cam.replace(exact=False).uses_exact
    assert not get_noise_model("gamma+gaussian", alpha=26.0, sigma=10.0).uses_exact
    with pytest.raises(NoiseModelError, match="exact must be True, False or None"):
        cam.replace(exact="yes")


def test_exact_solve_without_gaussian_part_is_the_poisson_rule():
    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=1.0, read_noise=0.0, exact=True)
    y = np.array([1.0, 3.0, 9.0, 21.0])
    s = np.array([0.1, -0.2, 0.05, 0.0])
    expect = (y - 1.0 + 1.0) * np.exp(2.0 * s)  # Eq. (13) with lam = 1 / gain on y - offset
    assert np.allclose(cam.solve(y, s), expect)


def test_a_pixel_solves_the_same_whatever_is_solved_with_it():
    """The table grows in blocks on a lattice fixed by the parameters: chunked, resumed and
    distributed runs, which solve different sets of pixels, agree exactly."""
    cam, y, s = _case(3.8, 1.0, 3.5, False)
    exact = cam.replace(exact=True)
    _count_table._cache.clear()
    dim = y < torch.quantile(y, 0.3)
    alone = exact._solve_exact(y[dim], s[dim])  # a small table first
    together = exact._solve_exact(y, s)  # grown for the bright pixels
    assert torch.equal(alone, together[dim])
    _count_table._cache.clear()
    assert torch.equal(exact._solve_exact(y, s), together)  # built at once: the same


def test_a_table_too_large_falls_back_to_the_reference(monkeypatch):
    cam, y, s = _case(4.0, 1.0, 3.5, False, n=16)
    exact = cam.replace(exact=True)
    _count_table._cache.clear()
    monkeypatch.setattr(_count_table, "MAX_ETA_NODES", _count_table.ETA_BLOCK)
    assert _count_table.solve_count_mixture(y, s, step=4.0, offset=3.5, sigma=1.0) is None
    assert torch.equal(exact._solve_exact(y, s), exact._solve_exact_newton(y, s))
