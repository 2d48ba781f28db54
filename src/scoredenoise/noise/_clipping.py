"""Moments of clipped noisy data, for noise level functions measured near clipping limits.

A camera or detector clips its output at the limits of its range (0, 4095, 65535): where the
noise reaches a limit the measured mean and variance are those of ``clip(y, low, high)``.
:meth:`NoiseModel.clipped_moments` gives them for a model; these are its two forms.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["count_clipped_moments", "normal_clipped_moments"]

#: counts up to which the count distribution is summed exactly; beyond, its skewness is at
#: most 0.1 and the normal form is used
_EXACT_COUNTS = 100.0
#: rates at which the sums are evaluated (interpolated between)
_NODES = 192


def normal_clipped_moments(mu, var, lo, hi):
    """Mean and variance of ``clip(y, lo, hi)`` for ``y ~ N(mu, var)`` (limits may be inf).

    The normal approximation of Foi et al. (2008), section 4.
    """
    from scipy.special import ndtr

    mu = np.asarray(mu, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    sd = np.sqrt(np.maximum(var, 1e-300))
    # moments of the clipped deviation z = clip(y, lo, hi) - mu, for numerical stability
    a, b = (lo - mu) / sd, (hi - mu) / sd
    Pa, Pb = ndtr(a), ndtr(b)
    pa = np.where(np.isfinite(a), np.exp(-0.5 * np.square(np.where(np.isfinite(a), a, 0)))
                  / math.sqrt(2 * math.pi), 0.0)
    pb = np.where(np.isfinite(b), np.exp(-0.5 * np.square(np.where(np.isfinite(b), b, 0)))
                  / math.sqrt(2 * math.pi), 0.0)
    lo_d = np.where(np.isfinite(a), a * sd, 0.0)  # lo - mu where finite
    hi_d = np.where(np.isfinite(b), b * sd, 0.0)
    inside = Pb - Pa
    m1 = lo_d * Pa + hi_d * (1 - Pb) + sd * (pa - pb)
    m2 = lo_d ** 2 * Pa + hi_d ** 2 * (1 - Pb) + var * inside + sd * (lo_d * pa - hi_d * pb)
    return mu + m1, np.maximum(m2 - m1 ** 2, 0.0)


def count_clipped_moments(signal, step, offset, sigma, lo, hi):
    """Mean and variance of ``clip(step * k + offset + N(0, sigma^2), lo, hi)``,
    ``k ~ Poisson(signal / step)``: photon counts with Gaussian read noise.

    Summed over the counts where they are few (up to ``_EXACT_COUNTS``) and a limit is within
    reach; elsewhere the normal form, which is exact away from the limits. A count's
    distribution is far from normal when it is small: photon-counting detectors give 0 at
    every dark pixel with no noise below it, which the normal form would take for clipping.
    """
    signal = np.maximum(np.asarray(signal, dtype=np.float64), 0.0)
    var = step * signal + sigma ** 2
    mean, out_var = normal_clipped_moments(signal + offset, var, lo, hi)
    lam = signal / step
    reach = 12.0 * np.sqrt(var) + step
    near = (lam <= _EXACT_COUNTS) & ((signal + offset - lo < reach) | (hi - signal - offset
                                                                        < reach))
    if not near.any():
        return mean, out_var
    from scipy.special import gammaln

    lam_near = lam[near]
    # the sums on at most _NODES rates, evenly spaced in sqrt(lam) (the moments are smooth
    # there), interpolated to the others
    lo_r, hi_r = math.sqrt(lam_near.min()), math.sqrt(lam_near.max())
    nodes = (np.linspace(lo_r, hi_r, _NODES) ** 2 if lam_near.size > _NODES and hi_r > lo_r
             else lam_near)
    ln = nodes[:, None]
    k = np.arange(int(math.ceil(ln.max() + 12 * math.sqrt(ln.max()) + 12)) + 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(k == 0, -ln, k * np.log(ln) - ln - gammaln(k + 1.0))
    logp = np.where(ln == 0, np.where(k == 0, 0.0, -np.inf), logp)
    p = np.exp(logp)
    centre = step * k + offset
    if sigma > 0:
        m_k, v_k = normal_clipped_moments(np.broadcast_to(centre, p.shape),
                                          np.full(p.shape, sigma ** 2), lo, hi)
    else:
        m_k, v_k = np.broadcast_to(np.clip(centre, lo, hi), p.shape), 0.0
    total = p.sum(1)
    m1 = (p * m_k).sum(1) / total
    v1 = np.maximum((p * (v_k + m_k ** 2)).sum(1) / total - m1 ** 2, 0.0)
    if nodes is not lam_near:
        m1, v1 = np.interp(lam_near, nodes, m1), np.interp(lam_near, nodes, v1)
    mean, out_var = mean.copy(), out_var.copy()
    mean[near], out_var[near] = m1, v1
    return mean, out_var
