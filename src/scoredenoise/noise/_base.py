"""The base class of the noise models (parameter metadata: ``_params``; the registry:
``_registry``; numpy-or-torch helpers: ``_tensors``; all importable from here as before).

A noise model p(y|x) is a small frozen dataclass. Its fields are its parameters; each field
carries metadata (unit, range, default, description) made with :func:`param`, and that one
description drives validation, ``to_dict``/``from_dict``, the ``scoredenoise noise-models``
listing and the napari widgets.

All arithmetic runs in torch so that one code path serves numpy arrays and torch tensors on
CPU or CUDA: numpy in gives numpy out, a tensor in gives a tensor on the same device out.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ._clipping import normal_clipped_moments
from ._errors import NoiseModelError
from ._local_gaussian import LocalGaussian
from ._operator import Correlation
from ._params import NoiseFit, Param, param  # noqa: F401 (also their old home)
from ._registry import (  # noqa: F401 (also their old home)
    _REGISTRY,
    _check_names,
    get_noise_model,
    list_noise_models,
    noise_model_from_dict,
    register,
)
from ._tensors import (  # noqa: F401 (also their old home)
    _check_finite,
    _common,
    _float_dtype,
    _nested_lists,
    as_tensor,
    default_rng,
    safe_log,
    support_error,
    to_output,
)

__all__ = [
    "NoiseModel",
    "Param",
    "param",
    "register",
    "get_noise_model",
    "noise_model_from_dict",
    "list_noise_models",
    "NoiseModelError",
]


# ---------------------------------------------------------------------------------------------
# parameter metadata


# ---------------------------------------------------------------------------------------------
# array helpers: one torch code path for numpy and torch inputs


# ---------------------------------------------------------------------------------------------
# registry


# ---------------------------------------------------------------------------------------------
# the base class


@dataclass(frozen=True)
class NoiseModel:
    """A noise model p(y|x): sampling, likelihood score and the solver of s(y) = f(x, y).

    Subclasses are frozen dataclasses whose fields are declared with :func:`param`; they set
    the class attributes below and implement the torch methods ``_sample_t`` (or ``_sample``),
    ``_log_prob``, ``_score``, ``_solve`` and ``rescaled``.

    Public methods take numpy arrays or torch tensors of any shape; arithmetic is
    element-wise except for the correlation operator A, which acts on the trailing
    ``kernel.ndim`` axes (leading axes such as time or channel are a batch).
    """

    name: ClassVar[str] = ""
    #: row of Table 1 of Xie et al. (2023), or None for models beyond the paper
    table1_row: ClassVar[int | None] = None
    #: the generative model, in plain text
    formula: ClassVar[str] = ""
    #: one line for users
    summary: ClassVar[str] = ""
    #: how ``solve`` works (closed form / iteration, with the paper's equation)
    solver: ClassVar[str] = ""
    #: what ``solve`` returns where the equation has no admissible root
    no_root: ClassVar[str] = "every (y, score) has an admissible root"
    #: admissible y, in words
    support: ClassVar[str] = "any real y"
    #: equation numbers / algorithms of the paper this model implements
    reference: ClassVar[str] = ""
    #: parameters that :func:`scoredenoise.estimate_noise` fits from the data's
    #: variance-against-mean relation (see :meth:`noise_level`); the others stay fixed
    estimable: ClassVar[tuple[str, ...]] = ()
    #: parameters that :meth:`white_noise_level` depends on (the noise added after a
    #: correlation kernel): :func:`scoredenoise.estimate_noise` fits that white part beside
    #: the kernel where one of them is to be estimated, and takes it as known otherwise
    white_params: ClassVar[tuple[str, ...]] = ()

    # ----- construction and metadata -------------------------------------------------------

    def __post_init__(self):
        for p in self.parameters():
            value = getattr(self, p.name)
            if p.kind == "kernel":
                # validated and normalised by the operator it defines
                object.__setattr__(self, p.name, Correlation(value).kernel)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                                  np.integer)):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise NoiseModelError(
                        f"{self.name}: {p.name} must be a number, got {value!r}") from None
            value = float(value)
            if not math.isfinite(value):
                raise NoiseModelError(f"{self.name}: {p.name} must be finite, got {value}")
            bad_low = p.low is not None and (value <= p.low if p.low_open else value < p.low)
            bad_high = p.high is not None and (value >= p.high if p.high_open else
                                               value > p.high)
            if bad_low or bad_high:
                raise NoiseModelError(
                    f"{self.name}: {p.name} must be {p.range_text()}, got {value:g}"
                    f"{self._range_hint(p.name)}")
            object.__setattr__(self, p.name, value)
        self._check()

    def _range_hint(self, name: str) -> str:
        """Extra advice appended to a range error (override where useful)."""
        return ""

    def _check(self) -> None:
        """Extra validation beyond each parameter's range (override)."""

    @classmethod
    def parameters(cls) -> tuple[Param, ...]:
        """The parameters of this model with their metadata, in declaration order."""
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata.get("param")
            if meta is None:
                continue
            out.append(Param(name=f.name, default=f.default, **meta))
        return tuple(out)

    @classmethod
    def describe(cls) -> dict:
        """All metadata of the model as a JSON-able dict (for the CLI and the UI)."""
        return {
            "name": cls.name,
            "table1_row": cls.table1_row,
            "formula": cls.formula,
            "summary": cls.summary,
            "solver": cls.solver,
            "no_root": cls.no_root,
            "support": cls.support,
            "reference": cls.reference,
            "parameters": [p.to_dict() for p in cls.parameters()],
        }

    def to_dict(self) -> dict:
        """JSON-able description, e.g. ``{"name": "gaussian", "params": {"sigma": 10.0}}``."""
        params = {}
        for p in self.parameters():
            v = getattr(self, p.name)
            params[p.name] = _nested_lists(v) if p.kind == "kernel" else float(v)
        return {"name": self.name, "params": params}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @staticmethod
    def from_dict(d: dict | str) -> NoiseModel:
        """Rebuild a model from :meth:`to_dict` output (or its JSON text)."""
        return noise_model_from_dict(d)

    def plus_gaussian(self, sigma: float) -> NoiseModel:
        """This noise followed by independent N(0, sigma^2) noise, as a registered model.

        Used for score models trained with a slight extra Gaussian noise (the paper's trick for
        non-Gaussian noise, appendix B): the extra noise is removed at solve time as a mixture.
        """
        if sigma == 0:
            return self
        for cls in _REGISTRY.values():  # the "+ gaussian" variant of this model's class
            if getattr(cls, "adds_gaussian", False) and getattr(cls, "base_cls", None) is \
                    type(self) and cls.base_field_map is not None:
                inv = {v: k for k, v in cls.base_field_map.items()}
                own = {p.name: getattr(self, inv.get(p.name, p.name))
                       for p in cls.parameters() if p.name != "sigma"}
                return cls(**own, sigma=sigma)
        raise NoiseModelError(
            f"{self.name}: adding independent Gaussian noise does not give a registered model; "
            f"train the score model without extra noise (extra_noise=0) for this noise model")

    def replace(self, **changes) -> NoiseModel:
        """A copy with some parameters changed (validated again)."""
        _check_names(type(self), changes)
        return dataclasses.replace(self, **changes)

    def implausible(self, data_range) -> list[str]:
        """Valid parameters that cannot fit data spanning ``data_range`` (low, high), one
        message each: a parameter in data units (a noise level, an offset, a gain per
        photo-electron) larger than the data's whole extent (e.g. a read noise of 1e6 ADU on
        8-bit data: a typo or the wrong units).

        Examples
        --------
        >>> [msg] = get_noise_model("gaussian", sigma=1e6).implausible((0, 255))
        >>> msg.split(":")[0]
        'sigma = 1e+06 (data units) is larger than the data (0 to 255)'
        """
        lo, hi = (float(v) for v in data_range)
        extent = max(hi - lo, abs(lo), abs(hi))
        out = []
        for p in self.parameters():
            if p.kind != "float" or not p.unit.startswith("data units"):
                continue
            v = float(getattr(self, p.name))
            if extent > 0 and abs(v) > extent:
                out.append(f"{p.name} = {v:g} ({p.unit}) is larger than the data ({lo:g} to "
                           f"{hi:g}): check the value and its units")
        return out

    def rescaled(self, k: float) -> NoiseModel:
        """The same noise for data multiplied by ``k``.

        If ``y ~ p(y|x)`` then ``k*y ~ p'(k*y | k*x)`` with ``p' = self.rescaled(k)``. Use it
        to convert parameters given on the paper's 0-255 scale to your data's range:
        ``model.rescaled(data_max / 255)``.
        """
        raise NotImplementedError  # every registered model overrides this

    # ----- public array API ----------------------------------------------------------------

    def sample(self, x, rng=None):
        """Draw ``y ~ p(y|x)``.

        Parameters
        ----------
        x : array_like or torch.Tensor
            Clean image in data units, any shape.
        rng : int, numpy.random.Generator or None
            Seed or generator; the same seed gives the same draw.

        Returns
        -------
        y : same type as ``x`` (floating)
        """
        xt = as_tensor(x)
        _check_finite("x", xt, self.name)
        self._check_x(xt)
        gen = default_rng(rng)
        xn = xt.detach().cpu().double().numpy()
        y = self._sample(xn, gen)
        yt = torch.from_numpy(np.asarray(y, dtype=np.float64)).to(device=xt.device,
                                                                  dtype=xt.dtype)
        return to_output(yt, x)

    def log_prob(self, x, y):
        """Element-wise terms of log p(y|x) whose sum is the joint log-density.

        Up to an additive constant that does not depend on ``y`` (e.g. log|det A|). For
        Poisson noise this is the paper's continuous approximation (Eq. 12); for mixtures,
        the paper's first-order approximation is used by the solver but ``log_prob`` is
        exact where it can be computed (see the model's docs).
        """
        t = _common(self.name, x=x, y=y)
        return to_output(self._log_prob(t["x"], t["y"]), y)

    def score(self, x, y):
        """Likelihood score f(x, y) = grad_y log p(y|x), same shape as ``y``."""
        t = _common(self.name, x=x, y=y)
        self._check_y(t["y"])
        return to_output(self._score(t["x"], t["y"]), y)

    def solve(self, y, score):
        """Solve ``score = f(x, y)`` for the clean image ``x``.

        Parameters
        ----------
        y : array_like or torch.Tensor
            Noisy image in data units.
        score : same shape as ``y``
            Score of the noisy data, s(y) = grad_y log p(y), in 1/data units.

        Returns
        -------
        x : same type as ``y``
            The denoised image. Where the equation has no admissible root the model's
            documented fallback is returned (see ``no_root``).
        """
        t = _common(self.name, y=y, score=score)
        self._check_y(t["y"])
        return to_output(self._solve(t["y"], t["score"]), y)

    @classmethod
    def correlated(cls) -> bool:
        """Whether the model has a correlation operator A (a ``kernel`` parameter)."""
        return any(p.kind == "kernel" for p in cls.parameters())

    def variance_at_result(self, y, score):
        """The noise's variance at each pixel's result, ``noise_level(E[y | x^])`` with x^
        the solve (numpy, y's units): where the model puts the result's mean below its
        floor (a camera's pixels the read noise pulled below the offset), the variance at
        a clean value of 0."""
        return self._variance_at_clean(self._result64(y, score))

    def _result64(self, y, score) -> np.ndarray:
        return np.asarray(self.solve(np.asarray(y, np.float32), np.asarray(score, np.float32)),
                          np.float64)

    def _variance_at_clean(self, x) -> np.ndarray:
        """``noise_level(E[y | x])`` per pixel, never below its value at x = 0."""
        off = float(getattr(self, "offset_value", 0.0))
        v = np.asarray(self.noise_level(self.mean_gain * np.asarray(x, np.float64) + off),
                       np.float64)
        least = max(float(np.asarray(self.noise_level(np.array([off])))[0]), 0.0)
        return np.maximum(v, least)

    def local_gaussian(self, y, score) -> LocalGaussian:
        """The model as y = G x + N(0, Sigma) around its result x^ = solve(y, score)
        (:class:`~scoredenoise.noise.LocalGaussian`): what the posterior covariance
        C + B^T J B needs. Element-wise models: G = mean_gain, Sigma = diag(v), v the
        variance at the result (:meth:`variance_at_result`); correlated models add their
        operator A (y = A z: G = mean_gain A, Sigma = A diag(v) A^T)."""
        if np.shape(y) != np.shape(score):
            raise NoiseModelError(f"{self.name}: y and score must have the same shape, got "
                                  f"{np.shape(y)} and {np.shape(score)}")
        return self._local_gaussian(self._result64(y, score))

    def _local_gaussian(self, x) -> LocalGaussian:
        """:meth:`local_gaussian` at a given result ``x`` (numpy float64)."""
        return LocalGaussian.diagonal(self._variance_at_clean(x), self.mean_gain)

    def posterior_variance(self, y, score, score_jacobian_diagonal):
        """Var[x_i | y] per pixel from the score and the diagonal of its Jacobian
        ds_i/dy_i: second-order Tweedie in the local Gaussian approximation.

        The noise at a pixel is taken as Gaussian with the variance the model gives at the
        result, v = :meth:`variance_at_result`, on y's scale (E[y | x] = ``mean_gain`` x):
        Var[x_i | y] = v (1 + v ds_i/dy_i) / mean_gain^2 (clipped at 0). Exact for Gaussian
        noise and the exact score of p(y) (Cov[x|y] = sigma^2 (I + sigma^2 ds/dy)); for
        the other models exact where their noise is close to Gaussian and its variance
        nearly constant across the posterior (many counts, a large gamma shape), an
        approximation otherwise (how close, against exact posteriors: docs/uncertainty.md).
        Models with a correlation operator A raise :class:`NotImplementedError`: their
        posterior variance needs the Jacobian's off-diagonal band around each pixel, not its
        diagonal; :func:`scoredenoise.posterior_std` probes it (:meth:`local_gaussian`)."""
        if self.correlated():
            raise NotImplementedError(
                f"{self.name}: the posterior variance of correlated noise needs the score's "
                f"Jacobian around each pixel, not its diagonal; scoredenoise.posterior_std "
                f"estimates it for every model (this method serves the models without a "
                f"kernel, e.g. {self.name.replace('-correlated', '')})")
        v = self.variance_at_result(y, score)
        d = np.asarray(score_jacobian_diagonal, np.float64)
        return np.clip(v * (1.0 + v * d), 0.0, None) / self.mean_gain ** 2

    def residual(self, x, y, score):
        """``f(x, y) - score`` for the equation that :meth:`solve` solves.

        Zero (up to rounding) at ``x = solve(y, score)`` wherever an admissible root exists.
        For mixtures, f is the paper's approximation (Eq. 22) evaluated at
        ``z = y + sigma**2 * score``.
        """
        t = _common(self.name, x=x, y=y, score=score)
        return to_output(self._equation_score(t["x"], t["y"], t["score"]) - t["score"], y)

    @property
    def mean_gain(self) -> float:
        """E[y | x] = mean_gain * x (+ the offset, for a camera): 1 for noise of mean zero;
        Rayleigh's multiplicative noise has a mean of its own. Stein's unbiased risk
        estimate (the sigma_a selection) needs y centred on x, so it divides by it."""
        return 1.0

    def noise_level(self, mean):
        """Variance of ``y`` as a function of its mean, ``Var[y | E[y] = mean]`` (numpy).

        The noise level function that :func:`scoredenoise.estimate_noise` fits to the data
        (for correlated models: the marginal variance of one pixel where the clean image is
        locally constant). Models without one cannot be estimated from a single image; use
        blind selection (:func:`scoredenoise.select_noise_parameters`) instead.
        """
        raise NotImplementedError(
            f"{self.name}: no variance-against-mean relation is known for this model; choose "
            f"its parameters with scoredenoise.select_noise_parameters instead")

    def clipped_moments(self, mean, low, high):
        """Mean and variance of ``clip(y, low, high)`` where ``E[y] = mean`` (numpy).

        What a noise level function measures near a clipping limit (a camera's 0 or 4095).
        Default: the normal form with variance :meth:`noise_level` (Foi et al. 2008); models
        of counts override it with the exact sum, since a count is far from normal where it is
        small.
        """
        mean = np.asarray(mean, dtype=np.float64)
        return normal_clipped_moments(mean, np.maximum(self.noise_level(mean), 1e-12), low,
                                      high)

    def white_noise_level(self, mean):
        """The part of :meth:`noise_level` that the model's correlation kernel leaves white.

        Noise added after the kernel (the Gaussian part of a correlated mixture, the
        ``white_sigma`` of ``gaussian-correlated``) is independent between pixels, so a
        measurement that divides out the kernel's correlation sees it differently from the
        rest (:meth:`scoredenoise.NoiseLevelFunction.model_variance`). 0 for a model whose noise
        all goes through its kernel or that has none.
        """
        return np.zeros(np.shape(mean))

    # ----- hooks -----------------------------------------------------------------------------

    def _check_x(self, x: torch.Tensor) -> None:
        """Validate a clean image before sampling (override where x has a support)."""

    def _check_y(self, y: torch.Tensor) -> None:
        """Validate noisy data against the model's support (override)."""

    def _sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _solve(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    #: points of the quadrature grid used by the exact mixture likelihood (see _mixture.py)
    _grid_points: ClassVar[int] = 1601
    _grid_halfwidth: ClassVar[float] = 9.0

    def _mixture_components(self, x, y, sigma):
        """Quadrature of p(y|x) = int N(y; z, sigma^2) p_z(z|x) dz for a continuous z.

        Returns nodes ``z`` and log weights (``log p_z(z|x) + log dz``) on a grid of
        ``sigma``-scaled offsets around ``y``, trailing axis the grid. Models with a discrete
        z (Poisson) override this with an exact sum.
        """
        t = torch.linspace(-self._grid_halfwidth, self._grid_halfwidth, self._grid_points,
                           dtype=y.dtype, device=y.device)
        z = y.unsqueeze(-1) + sigma * t
        dz = sigma * (t[1] - t[0])
        logw = self._log_prob(x.unsqueeze(-1).expand_as(z), z) + torch.log(dz)
        return z, logw

    def _equation_score(self, x, y, s):
        """The f of the equation f(x, y) = s that ``_solve`` solves (override for mixtures)."""
        return self._score(x, y)

    def __repr__(self) -> str:
        args = ", ".join(f"{p.name}={getattr(self, p.name)!r}" for p in self.parameters())
        return f"{type(self).__name__}({args})"


