"""Fixed-point iteration shared by the iterative solvers (Algorithms 2 and 3)."""

from __future__ import annotations

import torch

#: iteration cap; the paper uses 10 iterations, we iterate until converged (at most this)
MAX_ITER = 200
#: convergence: |x_new - x| <= RTOL * (|x| + scale) for every pixel
RTOL = 1e-7


def fixed_point(g, x0: torch.Tensor, scale: float | torch.Tensor, *, max_iter: int = MAX_ITER,
                rtol: float = RTOL, elementwise: bool = True):
    """Iterate ``x <- g(x)`` from ``x0``; return ``(x, converged)`` with a per-pixel mask.

    A pixel is frozen once its own update is below tolerance, so for an element-wise ``g`` the
    result of each pixel does not depend on the others (chunked and whole-image solves agree
    exactly). For a coupled ``g`` (``elementwise=False``) every pixel keeps iterating until all
    have converged. Stops when every pixel has converged, or after ``max_iter`` steps.
    """
    x = x0
    tol = rtol * 10 if x0.dtype == torch.float32 else rtol
    done = torch.zeros_like(x0, dtype=torch.bool)
    for _ in range(max_iter):
        x_new = g(x)
        now = (x_new - x).abs() <= tol * (x_new.abs() + scale)
        if elementwise:
            x = torch.where(done, x, x_new)
            done = done | now
        else:
            x, done = x_new, now
        if bool(done.all()):
            break
    return x, done & torch.isfinite(x)
