"""A noise model's local linear-Gaussian form around a result, for posterior variances of
correlated noise (issue 24).

Near the denoised image x^ a model is taken as y = G x + n, n ~ N(0, Sigma), with G and Sigma
linear operators (periodic convolutions and per-pixel scalings). Tweedie's second-order
formula for E[G x | y] then gives

    Cov[x | y] = G^-1 (Sigma + Sigma J Sigma) G^-T = C + B^T J B,

J = ds/dy the score's Jacobian, C = G^-1 Sigma G^-T and B = Sigma G^-T. Element-wise models
have G = mean_gain I and Sigma = diag(v); a correlated model y = A z adds A to G and Sigma,
so that B spreads a pixel's probe over A's footprint and the diagonal of B^T J B needs the
Jacobian's off-diagonal band (estimated with probes: ``score_jacobian_diagonal(left=,
right=)``). Exact for Gaussian noise and the exact score; the local Gaussian approximation
(the noise's variance taken at the result) for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["LocalGaussian"]


def _as64(u) -> np.ndarray:
    return np.asarray(u, dtype=np.float64)


def identity(u) -> np.ndarray:
    """G = I."""
    return _as64(u)


@dataclass(frozen=True)
class LocalGaussian:
    """y = G x + N(0, Sigma) near a result: the operators the posterior covariance needs.

    Parameters
    ----------
    cov : callable
        u -> Sigma u (Sigma symmetric), numpy in, numpy out.
    g_inv, g_inv_t : callable
        u -> G^-1 u and u -> G^-T u.
    c : numpy.ndarray
        The diagonal of G^-1 Sigma G^-T: the noise's variance at each pixel in the clean
        image's units (the posterior variance where the prior says nothing).
    g_inv_sq : numpy.ndarray or float
        The diagonal of G^-1 G^-T (what white noise of variance 1 adds to ``c``).

    Examples
    --------
    >>> import numpy as np
    >>> lg = LocalGaussian.diagonal(np.full((4, 4), 9.0), gain=1.0)
    >>> float(lg.b(np.ones((4, 4)))[0, 0]), float(lg.c[0, 0])
    (9.0, 9.0)
    """

    cov: Callable[[np.ndarray], np.ndarray]
    g_inv: Callable[[np.ndarray], np.ndarray]
    g_inv_t: Callable[[np.ndarray], np.ndarray]
    c: np.ndarray
    g_inv_sq: np.ndarray | float

    @classmethod
    def diagonal(cls, v, gain: float = 1.0) -> LocalGaussian:
        """Element-wise noise of variance ``v`` per pixel, E[y | x] = gain x."""
        v = _as64(v)
        g = float(gain)
        return cls(cov=lambda u: v * _as64(u), g_inv=lambda u: _as64(u) / g,
                   g_inv_t=lambda u: _as64(u) / g, c=v / g ** 2, g_inv_sq=1.0 / g ** 2)

    def b(self, u) -> np.ndarray:
        """B u = Sigma G^-T u."""
        return _as64(self.cov(self.g_inv_t(u)))

    def bt(self, u) -> np.ndarray:
        """B^T u = G^-1 Sigma u."""
        return _as64(self.g_inv(self.cov(u)))

    def plus_white(self, variance: float) -> LocalGaussian:
        """The same with independent Gaussian noise of ``variance`` added to y."""
        w = float(variance)
        cov = self.cov
        return LocalGaussian(cov=lambda u: _as64(cov(u)) + w * _as64(u), g_inv=self.g_inv,
                             g_inv_t=self.g_inv_t, c=self.c + w * self.g_inv_sq,
                             g_inv_sq=self.g_inv_sq)

    def smoothed(self, sandwich_diagonal, smooth) -> np.ndarray:
        """``smooth`` applied to (B^T J B)_ii / C_ii^2, then scaled back by C_ii^2.

        B^T J B grows with the noise's variance at each pixel (as C^2), so where the noise
        changes from pixel to pixel (signal-dependent noise) the diagonal is averaged in
        that ratio; for element-wise noise it is averaging J_ii itself, then
        v (1 + v J_ii) / gain^2, the element-wise models' formula."""
        c2 = np.square(np.asarray(self.c, np.float64))
        c2 = np.maximum(c2, 1e-12 * float(c2.max()) if c2.size and c2.max() > 0 else 1.0)
        return np.asarray(smooth(_as64(sandwich_diagonal) / c2), np.float64) * c2

    def variance(self, sandwich_diagonal) -> np.ndarray:
        """Var[x_i | y] = C_ii + (B^T J B)_ii, clipped at 0."""
        return np.clip(self.c + _as64(sandwich_diagonal), 0.0, None)
