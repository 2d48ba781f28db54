"""Mixtures of a (possibly correlated) noise model with additive Gaussian noise.

y = z + offset + eps, z ~ p_z(z|x), eps ~ N(0, sigma^2) (Table 1 rows 11-16 and the camera
model ``poisson-gaussian``). The solver is the paper's Algorithm 5: estimate the noise-free
``z_bar = E[z|y] = y - offset + sigma^2 s(y)`` by Tweedie's formula (Eq. 5) and solve the
base model's equation ``s(y) = f_z(x, z_bar)`` (Eq. 22-23).

``score`` and ``log_prob`` are exact where the model is element-wise: the mixture integral is
an exact sum over Poisson counts, or a fine quadrature for continuous z; they are meant for
validation and posterior sampling, and cost a few hundred evaluations per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ._base import NoiseModel, NoiseModelError, param
from ._clipping import count_clipped_moments
from ._count_table import BRACKET, solve_count_mixture

__all__ = ["GaussianMixtureModel", "gaussian_sigma_param"]

#: pixels evaluated at once by the exact mixture likelihood (bounds memory)
_PIXEL_BATCH = 4096
#: ``exact=None`` solves exactly where sigma is below this many photon steps (1 / lam)
EXACT_BELOW = 3.0


def gaussian_sigma_param():
    """The ``sigma`` field of the additive Gaussian component."""
    return param(10.0, unit="data units", low=0.0, low_open=True,
                 description="standard deviation of the additive Gaussian noise")


@dataclass(frozen=True)
class GaussianMixtureModel(NoiseModel):
    """Base for ``base + N(0, sigma^2)`` models; subclasses set ``base_cls``."""

    base_cls: ClassVar[type[NoiseModel]]
    #: what ``NoiseModel.plus_gaussian`` looks for in the registry (without importing this)
    adds_gaussian: ClassVar[bool] = True
    #: solve the exact likelihood equation instead of Algorithm 5's first-order approximation
    #: (see ``_solve_exact``): True, False, or None (default) for the exact solve wherever it
    #: is available and the Gaussian part is narrower than EXACT_BELOW photon steps, where
    #: Algorithm 5's approximation fails (``uses_exact``). Not a noise parameter: a choice of
    #: solver, kept by ``replace`` and ``plus_gaussian`` but not by ``to_dict``
    exact: bool | None = field(default=None, kw_only=True, repr=False)
    #: base-model parameter name -> this model's field name, where they differ; None for a
    #: model that is not the plain mixture of its base (e.g. the camera model)
    base_field_map: ClassVar[dict | None] = {}
    white_params: ClassVar[tuple[str, ...]] = ("sigma",)
    support: ClassVar[str] = "any real y"
    solver: ClassVar[str] = (
        "Algorithm 5: z = y - offset + sigma^2 s (Tweedie), then the base model's solver "
        "on (z, s)")

    @classmethod
    def supports_exact(cls) -> bool:
        """Whether ``exact=True`` (the exact solve, a sum over counts) is available."""
        return bool(getattr(cls.base_cls, "exact_mixture_solve", False))

    @property
    def uses_exact(self) -> bool:
        """Whether ``solve`` uses the exact equation: ``exact``, or where it is None, the
        exact solve wherever it is available and sigma < EXACT_BELOW photon steps (beyond,
        Algorithm 5 is as good: oracle benchmark, docs/benchmarks.md)."""
        if self.exact is not None:
            return bool(self.exact)
        return self.supports_exact() and self.gaussian_sigma < EXACT_BELOW / self.base.lam

    def _check(self) -> None:
        object.__setattr__(self, "_base_model", self._make_base())
        if self.exact not in (None, True, False):
            raise NoiseModelError(f"{self.name}: exact must be True, False or None (automatic), "
                                  f"got {self.exact!r}")
        if self.exact and not self.supports_exact():
            raise NoiseModelError(
                f"{self.name}: exact=True is available where the noise-free part is a count "
                f"(Poisson: poisson-gaussian, poisson+gaussian); {self._base_model.name} uses "
                f"Algorithm 5 (exact=False)")

    def _make_base(self) -> NoiseModel:
        return self.base_cls(**{p.name: getattr(self, self.base_field_map.get(p.name, p.name))
                                for p in self.base_cls.parameters()})

    @property
    def base(self) -> NoiseModel:
        """The model of the noise-free part z."""
        return self._base_model

    @property
    def gaussian_sigma(self) -> float:
        return self.sigma

    @property
    def offset_value(self) -> float:
        return 0.0

    @property
    def estimable(self) -> tuple[str, ...]:  # the base model's, renamed, and sigma
        return tuple(self.base_field_map.get(n, n) for n in self.base.estimable) + \
            ("sigma",)

    @property
    def mean_gain(self) -> float:
        return self.base.mean_gain

    def noise_level(self, mean):
        return self.base.noise_level(np.asarray(mean) - self.offset_value) + \
            self.gaussian_sigma ** 2

    def clipped_moments(self, mean, low, high):
        if not self.supports_exact():  # z is not a count: the normal form
            return super().clipped_moments(mean, low, high)
        return count_clipped_moments(np.asarray(mean, dtype=np.float64) - self.offset_value,
                                     1.0 / self.base.lam, self.offset_value,
                                     self.gaussian_sigma, low, high)

    def white_noise_level(self, mean):
        return self.base.white_noise_level(np.asarray(mean) - self.offset_value) + \
            self.gaussian_sigma ** 2

    def plus_gaussian(self, sigma: float) -> NoiseModel:
        return self.replace(sigma=float(np.hypot(self.sigma, sigma)))

    def rescaled(self, k: float) -> NoiseModel:
        base = self.base.rescaled(k).to_dict()["params"]
        own = {self.base_field_map.get(n, n): v for n, v in base.items()}
        return self.replace(**own, sigma=self.sigma * k)

    def _check_x(self, x):
        self.base._check_x(x)

    def _local_gaussian(self, x):
        if self.base.correlated():  # A z + white noise: the base's operators, Sigma + s^2
            return self.base._local_gaussian(x).plus_white(self.gaussian_sigma ** 2)
        return super()._local_gaussian(x)

    def _sample(self, x, rng):
        z = self.base._sample(x, rng)
        return z + self.offset_value + rng.normal(0.0, self.gaussian_sigma, size=np.shape(x))

    def _z_bar(self, y, s):
        return y - self.offset_value + self.gaussian_sigma ** 2 * s

    def _solve(self, y, s):
        if self.uses_exact and self.gaussian_sigma > 0:
            return self._solve_exact(y, s)
        return self.base._solve(self._z_bar(y, s), s)

    def _score_and_slope(self, x, y):
        """The exact likelihood score f(x, y) and df/dx, for a Poisson count z = k / lam.

        f = E[z - (y - offset) | x, y] / sigma^2 over the posterior weights w of the counts, and
        df/dx = lam Var_w[z] / (sigma^2 x) (d/dx log Poisson(k; lam x) = k/x - lam), so f
        increases with x: the equation f(x, y) = s has at most one root.
        """
        sig2 = self.gaussian_sigma ** 2
        lam = self.base.lam
        xf, yf = x.reshape(-1), y.reshape(-1)
        # blocks of similar x and y need fewer count nodes (a block takes its widest pixel's)
        order = torch.argsort(torch.maximum(xf, yf - self.offset_value))
        f, d = torch.empty_like(yf), torch.empty_like(yf)
        for i in range(0, yf.numel(), _PIXEL_BATCH):
            sel = order[i:i + _PIXEL_BATCH]
            z, yz, logr = self._log_terms(xf[sel], yf[sel])
            w = torch.softmax(logr, dim=-1)
            m1 = (w * z).sum(-1)
            var = ((w * z * z).sum(-1) - m1 * m1).clamp(min=0)
            f[sel] = (m1 - yz) / sig2
            d[sel] = lam * var / (sig2 * xf[sel].clamp(min=1e-12))
        return f.reshape(y.shape), d.reshape(y.shape)

    def _solve_exact(self, y, s):
        """Root of the exact likelihood equation f(x, y) = s, x >= 0, from a table of the
        equation built once per parameter set (:mod:`._count_table`: tens of milliseconds a
        512x512 plane, integer or float data; :meth:`_solve_exact_newton` is the per-pixel
        reference)."""
        x = solve_count_mixture(y.double(), s.double(), step=1.0 / self.base.lam,
                                offset=self.offset_value, sigma=self.gaussian_sigma)
        if x is None:  # a table too large (read noise far below the step, many counts)
            return self._solve_exact_newton(y, s)
        return x.to(y.dtype)

    def _solve_exact_newton(self, y, s, max_iter: int = 100):
        """Root of the exact likelihood equation f(x, y) = s by bracketed Newton, x >= 0
        (the reference solver; seconds a 512x512 plane).

        Algorithm 5 replaces f by the base model's score at z_bar = E[z|y] (Tweedie), which is
        accurate only where sigma is large against the spacing and spread of z: with a
        camera's read noise below its gain it fails in the dark (the count there is 0 or 1 and
        the score of y is the read noise's). The exact f is a sum over counts; it increases
        with x, so a bracket [lo, hi] with f(lo) < s <= f(hi) and Newton steps inside it
        (bisection where a step leaves it) converge for every pixel. Pixels with
        f(0, y) >= s have no positive root: x = 0, as Algorithm 5's own no-root rule.
        """
        dt, shape = y.dtype, y.shape
        yd, sd = y.double().reshape(-1), s.double().reshape(-1)
        lam = self.base.lam
        scale = self.gaussian_sigma + 1.0 / lam
        # at x = 0 the count is 0: f(0, y) = -(y - offset) / sigma^2 exactly
        f0 = -(yd - self.offset_value) / self.gaussian_sigma ** 2
        zero = f0 >= sd
        # an upper bracket: the noise-free level can be at most this far above y (beyond it
        # the count's spread alone would make y implausible). It is not evaluated: where f
        # stays below s up to it, the score asks for more than the data allow, every step
        # raises lo, and x converges to that bound
        yz = (yd - self.offset_value).clamp(min=0)
        hi = yz + BRACKET * (scale + torch.sqrt(yz / lam))
        lo = torch.zeros_like(yd)
        # start from Tweedie's z_bar (Algorithm 5's first step), inside the bracket
        x = (yd - self.offset_value + self.gaussian_sigma ** 2 * sd).clamp(min=1e-3 * scale)
        x = torch.where(x >= hi, (lo + hi) / 2, x)
        x = torch.where(zero, lo, x)
        active = ~zero
        tol = 1e-6 * scale
        for _ in range(max_iter):  # Newton on the pixels not yet converged only
            idx = torch.nonzero(active).reshape(-1)
            if idx.numel() == 0:
                break
            xa, la, ha = x[idx], lo[idx], hi[idx]
            f, d = self._score_and_slope(xa, yd[idx])
            r = f - sd[idx]
            la = torch.where(r < 0, xa, la)
            ha = torch.where(r >= 0, xa, ha)
            xn = xa - r / d.clamp(min=1e-300)
            bad = ~torch.isfinite(xn) | (xn <= la) | (xn >= ha)
            xn = torch.where(bad, (la + ha) / 2, xn)
            conv = ((xn - xa).abs() <= tol) | ((ha - la) <= tol)
            x[idx], lo[idx], hi[idx] = xn, la, ha
            active[idx[conv]] = False
        return x.reshape(shape).to(dt)

    def _equation_score(self, x, y, s):
        if self.uses_exact and self.gaussian_sigma > 0:  # the equation _solve_exact solves
            return self._score(x, y)
        # Eq. (22): grad_y log p(y|x) ~ f_z(x, z_bar)
        return self.base._score(x, self._z_bar(y, s))

    def _blocks(self, x, y, fn):
        xf, yf = x.reshape(-1), y.reshape(-1)
        n = _PIXEL_BATCH
        out = [fn(xf[i:i + n], yf[i:i + n]) for i in range(0, yf.numel(), n)]
        return torch.cat(out).reshape(y.shape) if out else y.clone()

    def _log_terms(self, x, y):
        sig = self.gaussian_sigma
        yz = y - self.offset_value
        z, logw = self.base._mixture_components(x, yz, sig)
        logr = logw - (yz.unsqueeze(-1) - z) ** 2 / (2 * sig ** 2)
        return z, yz, logr

    def _log_prob(self, x, y):
        if self.gaussian_sigma == 0:
            return self.base._log_prob(x, y - self.offset_value)

        def fn(xb, yb):
            _, _, logr = self._log_terms(xb, yb)
            return torch.logsumexp(logr, dim=-1) - math.log(self.gaussian_sigma *
                                                             math.sqrt(2 * math.pi))
        return self._blocks(x, y, fn)

    def _score(self, x, y):
        if self.gaussian_sigma == 0:
            return self.base._score(x, y - self.offset_value)

        # grad_y log int N(y; z, s^2) p(z|x) dz = E[z - y | x, y] / sigma^2
        def fn(xb, yb):
            z, yz, logr = self._log_terms(xb, yb)
            w = torch.softmax(logr, dim=-1)
            return (w * (z - yz.unsqueeze(-1))).sum(-1) / self.gaussian_sigma ** 2
        return self._blocks(x, y, fn)
