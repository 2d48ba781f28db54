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
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ._base import NoiseModel, param

__all__ = ["GaussianMixtureModel", "gaussian_sigma_param"]

#: elements per block when evaluating the exact mixture likelihood (bounds memory)
_BLOCK = 4096


def gaussian_sigma_param():
    """The ``sigma`` field of the additive Gaussian component."""
    return param(10.0, unit="data units", low=0.0, low_open=True,
                 description="standard deviation of the additive Gaussian noise")


@dataclass(frozen=True)
class GaussianMixtureModel(NoiseModel):
    """Base for ``base + N(0, sigma^2)`` models; subclasses set ``base_cls``."""

    base_cls: ClassVar[type[NoiseModel]]
    #: base-model parameter name -> this model's field name, where they differ; None for a
    #: model that is not the plain mixture of its base (e.g. the camera model)
    base_field_map: ClassVar[dict | None] = {}
    support: ClassVar[str] = "any real y"
    solver: ClassVar[str] = (
        "Algorithm 5: z = y - offset + sigma^2 s (Tweedie), then the base model's solver "
        "on (z, s)")

    def _check(self) -> None:
        object.__setattr__(self, "_base_model", self._make_base())

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

    def noise_level(self, mean):
        return self.base.noise_level(np.asarray(mean) - self.offset_value) + \
            self.gaussian_sigma ** 2

    def plus_gaussian(self, sigma: float) -> NoiseModel:
        return self.replace(sigma=float(np.hypot(self.sigma, sigma)))

    def rescaled(self, k: float) -> NoiseModel:
        base = self.base.rescaled(k).to_dict()["params"]
        own = {self.base_field_map.get(n, n): v for n, v in base.items()}
        return self.replace(**own, sigma=self.sigma * k)

    def _check_x(self, x):
        self.base._check_x(x)

    def _sample(self, x, rng):
        z = self.base._sample(x, rng)
        return z + self.offset_value + rng.normal(0.0, self.gaussian_sigma, size=np.shape(x))

    def _z_bar(self, y, s):
        return y - self.offset_value + self.gaussian_sigma ** 2 * s

    def _solve(self, y, s):
        return self.base._solve(self._z_bar(y, s), s)

    def _equation_score(self, x, y, s):
        # Eq. (22): grad_y log p(y|x) ~ f_z(x, z_bar)
        return self.base._score(x, self._z_bar(y, s))

    def _blocks(self, x, y, fn):
        xf, yf = x.reshape(-1), y.reshape(-1)
        out = [fn(xf[i:i + _BLOCK], yf[i:i + _BLOCK]) for i in range(0, yf.numel(), _BLOCK)]
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
