"""The correlation operator A of correlated noise models: periodic convolution with a small
kernel, its adjoint and its inverse (a leaf of the noise package: the base model validates
kernels with it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._errors import NoiseModelError

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

    def adjoint_diagonal(self, w):
        """The diagonal of A^T diag(w) A: at pixel i, sum_m k_m^2 w_(i+m) (periodic;
        numpy in, numpy out)."""
        w = np.asarray(w, dtype=np.float64)
        k2 = self.as_array() ** 2
        nd = self.ndim
        dims = tuple(range(-nd, 0))
        t = torch.from_numpy(w)
        h2 = torch.fft.rfftn(torch.from_numpy(self._centred(k2, w.shape[-nd:])))
        return torch.fft.irfftn(torch.fft.rfftn(t, dim=dims) * h2.conj(), s=w.shape[-nd:],
                                dim=dims).numpy()

    def inverse_gram_diagonal(self, shape) -> float:
        """The (constant) diagonal of A^-1 A^-T on a periodic grid of ``shape``: what white
        noise of variance 1 in y becomes at one pixel of z = A^-1 y."""
        delta = np.zeros(tuple(shape)[-self.ndim:], dtype=np.float64)
        delta[(0,) * self.ndim] = 1.0
        return float(np.sum(self.inverse_adjoint(delta) ** 2))

    def filter(self, t, op):
        """Apply a Fourier multiplier ``op(F t, H)`` built from the kernel's transfer H."""
        return self._wrap(t, op)

    def _wrap(self, t, op):
        if isinstance(t, torch.Tensor):
            return self._filter(t, op)
        arr = np.asarray(t, dtype=np.float64)
        return self._filter(torch.from_numpy(arr), op).numpy()
