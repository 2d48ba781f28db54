"""The correlation operator A (a small convolution kernel) and correlated noise models.

A is a periodic convolution over the trailing ``kernel.ndim`` axes of an array (2D kernels act
on each plane of a stack, 3D kernels on volumes). Periodic boundaries make A a circulant
operator: diagonal in the Fourier basis, so its adjoint (correlation with the same kernel) and
its inverse are exact and cheap by FFT. Leading axes (time, channel, planes for a 2D kernel) are
a batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ._base import NoiseModel, NoiseModelError, param

__all__ = ["Correlation", "PAPER_KERNEL", "CorrelatedModel", "kernel_param"]

#: The 3x3 kernel of Eq. (30) of Xie et al. (2023).
PAPER_KERNEL = ((0.05, 0.1, 0.05), (0.1, 0.4, 0.1), (0.05, 0.1, 0.05))

#: A kernel whose Fourier transform falls below this fraction of its maximum is rejected:
#: its inverse would amplify noise by more than 1/RCOND.
RCOND = 1e-3


def _as_tuple(a: np.ndarray):
    if a.ndim == 1:
        return tuple(float(v) for v in a)
    return tuple(_as_tuple(r) for r in a)


@dataclass(frozen=True)
class Correlation:
    """Periodic convolution A with a small odd-sized kernel, its adjoint and its inverse.

    Parameters
    ----------
    kernel : array_like
        1D, 2D or 3D kernel with odd sizes, centred. Its discrete Fourier transform must stay
        away from zero (``min|H| >= 1e-3 max|H|``) so that A is stably invertible.

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import Correlation, PAPER_KERNEL
    >>> A = Correlation(PAPER_KERNEL)
    >>> z = np.random.default_rng(0).random((32, 32))
    >>> bool(np.allclose(A.inverse(A.apply(z)), z))
    True
    """

    kernel: tuple = PAPER_KERNEL

    def __post_init__(self):
        try:
            k = np.asarray(self.kernel, dtype=np.float64)
        except (TypeError, ValueError):
            raise NoiseModelError(
                f"kernel must be a rectangular array of numbers, got {self.kernel!r}") from None
        if k.ndim not in (1, 2, 3) or k.size == 0:
            raise NoiseModelError(
                f"kernel must be 1D, 2D or 3D, got shape {k.shape}; e.g. the paper's 3x3 kernel")
        if any(n % 2 == 0 for n in k.shape):
            raise NoiseModelError(
                f"kernel sizes must be odd so that it has a centre, got shape {k.shape}; pad it "
                f"with zeros to an odd size")
        if not np.all(np.isfinite(k)):
            raise NoiseModelError("kernel contains NaN or infinite values")
        grid = [max(64, 4 * n) for n in k.shape]
        h = np.abs(np.fft.rfftn(self._centred(k, grid)))
        if h.max() == 0 or h.min() < RCOND * h.max():
            ratio = h.min() / h.max() if h.max() > 0 else 0.0
            raise NoiseModelError(
                f"kernel is not stably invertible: its Fourier transform falls to {ratio:.2e} "
                f"of its maximum (need >= {RCOND:g}), so A^-1 would blow up noise; use a kernel "
                f"with a larger centre weight, e.g. the paper's {PAPER_KERNEL}")
        object.__setattr__(self, "kernel", _as_tuple(k))

    @staticmethod
    def _centred(k: np.ndarray, shape) -> np.ndarray:
        """Zero-pad ``k`` to ``shape`` with its centre moved to index 0 (wrap-around)."""
        out = np.zeros(shape, dtype=k.dtype)
        out[tuple(slice(0, n) for n in k.shape)] = k
        return np.roll(out, [-(n // 2) for n in k.shape], axis=tuple(range(k.ndim)))

    @property
    def ndim(self) -> int:
        """Number of trailing axes A acts on."""
        return np.asarray(self.kernel).ndim

    def as_array(self) -> np.ndarray:
        return np.asarray(self.kernel, dtype=np.float64)

    def _transfer(self, t: torch.Tensor) -> torch.Tensor:
        nd = self.ndim
        if t.ndim < nd:
            raise NoiseModelError(
                f"the correlation kernel is {nd}D but the image has only {t.ndim} axes")
        shape = tuple(t.shape[-nd:])
        k = self.as_array()
        if any(s < n for s, n in zip(shape, k.shape)):
            raise NoiseModelError(
                f"image axes {shape} are smaller than the correlation kernel {k.shape}")
        kp = torch.from_numpy(self._centred(k, shape)).to(device=t.device, dtype=t.dtype)
        return torch.fft.rfftn(kp)

    def _filter(self, t: torch.Tensor, op) -> torch.Tensor:
        nd = self.ndim
        dims = tuple(range(-nd, 0))
        h = self._transfer(t)
        out = torch.fft.irfftn(op(torch.fft.rfftn(t, dim=dims), h), s=t.shape[-nd:], dim=dims)
        return out.to(t.dtype)

    def _check_invertible_on(self, h: torch.Tensor) -> torch.Tensor:
        mag = h.abs()
        if float(mag.min()) < RCOND * float(mag.max()):
            raise NoiseModelError(
                "the correlation kernel is not invertible on this image size (its Fourier "
                "transform vanishes at some frequency); use a kernel with a larger centre weight")
        return h

    def apply(self, t):
        """A t: periodic convolution with the kernel."""
        return self._wrap(t, lambda f, h: f * h)

    def adjoint(self, t):
        """A^T t: periodic correlation with the kernel."""
        return self._wrap(t, lambda f, h: f * h.conj())

    def inverse(self, t):
        """A^-1 t, exact for the periodic operator."""
        return self._wrap(t, lambda f, h: f / self._check_invertible_on(h))

    def inverse_adjoint(self, t):
        """A^-T t."""
        return self._wrap(t, lambda f, h: f / self._check_invertible_on(h).conj())

    def filter(self, t, op):
        """Apply a Fourier multiplier ``op(F t, H)`` built from the kernel's transfer H."""
        return self._wrap(t, op)

    def _wrap(self, t, op):
        if isinstance(t, torch.Tensor):
            return self._filter(t, op)
        arr = np.asarray(t, dtype=np.float64)
        return self._filter(torch.from_numpy(arr), op).numpy()


def kernel_param():
    """The ``kernel`` field shared by every correlated model."""
    return param(PAPER_KERNEL, unit="kernel", kind="kernel",
                 description="correlation kernel A over the trailing axes (default: Eq. 30)")


@dataclass(frozen=True)
class CorrelatedModel(NoiseModel):
    """y = A z with z ~ p_z(z|x) element-wise (Table 1 rows 6, 8, 10), solved by Algorithm 4.

    Subclasses set ``base_cls`` and declare the base model's fields plus ``kernel``.
    """

    base_cls: ClassVar[type[NoiseModel]]
    solver: ClassVar[str] = (
        "Algorithm 4: s~ = A^T s, z = A^-1 y (FFT), then the element-wise model's solver")

    def _check(self) -> None:
        op = Correlation(self.kernel)
        object.__setattr__(self, "kernel", op.kernel)
        object.__setattr__(self, "_op", op)
        object.__setattr__(self, "_base_model", self.base_cls(
            **{p.name: getattr(self, p.name) for p in self.base_cls.parameters()}))

    @property
    def operator(self) -> Correlation:
        return self._op

    @property
    def base(self) -> NoiseModel:
        """The element-wise model of z."""
        return self._base_model

    @property
    def estimable(self) -> tuple[str, ...]:  # the base model's, and the kernel (from the
        return self.base_cls.estimable + ("kernel",)  # noise's covariance, estimate_kernel)

    @property
    def mean_gain(self) -> float:  # locally constant x: E y = sum(k) E z
        return self.base.mean_gain * float(np.sum(np.asarray(self.kernel, np.float64)))

    def noise_level(self, mean):
        # locally constant x: E y = sum(k) E z and Var y = sum(k^2) Var z
        k = np.asarray(self.kernel, dtype=np.float64)
        return float(np.sum(k * k)) * self.base.noise_level(np.asarray(mean) / float(k.sum()))

    def rescaled(self, k: float) -> NoiseModel:
        return dataclasses.replace(self, **self.base.rescaled(k).to_dict()["params"])

    def _check_x(self, x):
        self.base._check_x(x)

    def _check_y(self, y):
        self.base._check_y(y)

    def _sample(self, x, rng):
        return self.operator.apply(self.base._sample(x, rng))

    def _log_prob(self, x, y):
        # log p_y(y|x) = sum log p_z(A^-1 y | x) - log|det A|; the constant is dropped
        return self.base._log_prob(x, self.operator.inverse(y))

    def _score(self, x, y):
        # Eq. (18)
        return self.operator.inverse_adjoint(self.base._score(x, self.operator.inverse(y)))

    def _solve(self, y, s):
        return self.base._solve(self.operator.inverse(y), self.operator.adjoint(s))

    def _mixture_components(self, x, y, sigma):
        raise NoiseModelError(
            f"{self.name} + Gaussian: the exact likelihood of A z + Gaussian noise is a "
            f"d-dimensional integral with no closed form; the solver uses the paper's "
            f"approximation (Eq. 22), see residual()")
