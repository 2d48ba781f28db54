"""Electron-multiplying detectors: photon counts whose pulses have random heights."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ._base import NoiseModel, NoiseModelError, param, register, support_error
from ._count_table import BRACKET, MonotoneRows, lam_nodes, value_rows
from .poisson_gaussian import PoissonGaussian

#: quadrature nodes of the pulse heights, at most (bounds the tables' memory)
_MAX_NODES = 8192
#: elements (pixels x counts x nodes) per block of the quadrature (bounds its memory)
_ELEMENTS = 1 << 22
_cache: OrderedDict = OrderedDict()
#: the largest shape the photon-transfer estimate gives (pulses 7 times narrower than their
#: mean: hardly distinguishable from fixed steps)
_MAX_SHAPE = 50.0
_CACHE_SIZE = 8


@register
@dataclass(frozen=True)
class Emccd(NoiseModel):
    """y = A_1 + ... + A_k + offset + N(0, read_noise^2), k ~ Poisson(x / gain), A_i i.i.d.
    Gamma(shape, gain / shape): the pulse height of one photon, mean ``gain``.

    The noise of detectors that multiply each photo-electron by a random gain: EMCCD cameras
    (the exponential, ``shape=1``, of a long multiplication register), photomultiplier tubes
    and hybrid detectors of confocal and two-photon microscopes (narrower pulses: larger
    ``shape``). One photon gives a pulse anywhere from 0 to a few times ``gain``, not a fixed
    step: the data show a peak at the offset (no photon) and a continuum above it, not the
    comb of counts of ``poisson-gaussian``, whose exact solve then fails (FMD's two-photon
    zebrafish frame: -3 dB; this model with the same score: +25 dB, docs/noise-models.md).
    Mean x + offset, variance gain (1 + 1/shape) x + read_noise^2: the excess noise factor
    F^2 = 1 + 1/shape (2 for an EMCCD) multiplies the shot noise.

    Solved exactly: s(y) = E[d/dy log q_k(y - offset) | x, y] over the photon count k, where
    q_k is k pulses convolved with the read noise (a quadrature), tabulated once per
    parameter set like ``poisson-gaussian``'s exact solve. The result is the signal x above
    the offset (``denoise`` adds the offset back by default).

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import Emccd
    >>> det = Emccd(gain=20.0, shape=1.0, offset=100.0, read_noise=3.0)
    >>> y = det.sample(np.full(200_000, 40.0), rng=0)
    >>> round(float(y.mean())), round(float(y.var()) / 100)   # 140, (20 * 2 * 40 + 9) / 100
    (140, 16)
    """

    name = "emccd"
    formula = ("y = sum of k pulses Gamma(shape, gain/shape) + offset + N(0, read_noise^2), "
               "k ~ Poisson(x / gain)")
    summary = ("electron-multiplying detectors (EMCCD, photomultiplier, hybrid detector): "
               "photon counts with random pulse heights, plus offset and read noise")
    solver = ("exact: the likelihood equation, a sum over photon counts of the pulses "
              "convolved with the read noise, tabulated once per parameter set")
    no_root = "where no x >= 0 explains the score (it is below the dark pixels'): x = 0"
    reference = ("Hirsch et al. 2013 (EMCCD noise); Basden et al. 2003 (photon counting); "
                 "Xie et al. 2023 for the solve")

    gain: float = param(10.0, unit="data units per photon", low=0.0, low_open=True,
                        description="mean pulse height of one photon (ADU)")
    shape: float = param(1.0, unit="dimensionless", low=0.5,
                         description="Gamma shape of the pulse heights: 1 for an EMCCD "
                                     "(exponential), larger for narrower pulses; the excess "
                                     "noise factor is 1 + 1/shape")
    offset: float = param(0.0, unit="data units",
                          description="detector offset / black level added to every pixel")
    read_noise: float = param(1.0, unit="data units", low=0.0, low_open=True,
                              description="standard deviation of the Gaussian read noise")

    #: the variance gives gain * (1 + 1/shape) and read_noise^2 - that * offset; shape is
    #: the detector's (kept as given), the offset the darkest level unless given
    estimable = ("gain", "read_noise")

    @property
    def offset_value(self) -> float:
        return self.offset

    @property
    def gaussian_sigma(self) -> float:
        return self.read_noise

    @property
    def excess(self) -> float:
        """The excess noise factor F^2 = 1 + 1/shape."""
        return 1.0 + 1.0 / self.shape

    def noise_level(self, mean):
        return self.gain * self.excess * (np.asarray(mean) - self.offset) + self.read_noise ** 2

    @staticmethod
    def shape_for_skew(ratio: float) -> float:
        """The shape whose pulses give the noise a third cumulant ``ratio`` times photon
        counting's (:meth:`NoiseLevelFunction.third_cumulant_ratio`): ratio = (1 + 2/shape) /
        (1 + 1/shape), so shape = (2 - ratio) / (ratio - 1), within [0.5, 50] (50 at or below
        ratio 1: fixed steps).

        Examples
        --------
        >>> from scoredenoise.noise import Emccd
        >>> Emccd.shape_for_skew(1.5), Emccd.shape_for_skew(0.9)
        (1.0, 50.0)
        """
        if ratio <= 1:
            return _MAX_SHAPE
        return min(max((2 - ratio) / (ratio - 1), 0.5), _MAX_SHAPE)

    def fit_noise_level(self, nlf, known: dict):
        """Fit as ``poisson-gaussian`` (whose gain is the slope of variance against mean),
        then read the pulse height off the slope: gain = slope / (1 + 1/shape).

        The shape is kept as given, except from repeated frames (photon transfer: the
        measurement has the noise's third cumulant) when it was not given: it is then
        estimated from the third cumulant's ratio to Poisson's, rho =
        (1 + 2/shape) / (1 + 1/shape) (:meth:`NoiseLevelFunction.third_cumulant_ratio`), so
        shape = (2 - rho) / (rho - 1), within the parameter's range [0.5, 50]."""
        if "gain" in known:
            raise NoiseModelError("emccd: the gain is what the estimate measures; give offset= "
                                  "or read_noise= only")
        det, shape_note, shape_se = self, None, None
        ratio = nlf.third_cumulant_ratio() if "shape" not in known else None
        if ratio is not None:
            rho, se = ratio
            shape = self.shape_for_skew(rho)
            det = self.replace(shape=shape)
            if 0.5 < shape < _MAX_SHAPE:
                shape_se = se / (rho - 1) ** 2  # |d shape / d rho|
            shape_note = (f"shape {shape:.3g} estimated from the third cumulant of the repeated "
                          f"frames: {rho:.3f} +/- {se:.3f} times photon counting's (1 + 2/shape) "
                          f"/ (1 + 1/shape)" + ("; at the end of its range [0.5, "
                          f"{_MAX_SHAPE:g}]: the pulses' spread is not measurable here"
                          if shape_se is None else ""))
        pg = {k: v for k, v in known.items() if k in ("offset", "read_noise")}
        # (the third cumulant is used here: poisson-gaussian's note on it does not apply)
        plain = dataclasses.replace(nlf, third_mean=None, third=None, third_stderr=None)
        est = PoissonGaussian(offset=pg.get("offset", 0.0)).fit_noise_level(plain, pg)
        f = det.excess
        fitted = det.replace(gain=est.noise_model.gain / f, offset=est.noise_model.offset,
                             read_noise=max(est.noise_model.read_noise, 1e-6))
        est.noise_model = fitted
        est.stderr = {k: (v / f if k == "gain" else v) for k, v in est.stderr.items()}
        if shape_note is not None:
            est.notes.append(shape_note)
            est.derived["third_cumulant_ratio"] = ratio[0]
            est.derived["third_cumulant_ratio_stderr"] = ratio[1]
            if shape_se is not None:
                est.stderr["shape"] = shape_se
                est.estimated = tuple(est.estimated) + ("shape",)
        else:
            est.notes.append(f"gain = slope / (1 + 1/shape) with shape {det.shape:g} as given: "
                             f"the variance measures gain * (1 + 1/shape) only"
                             + ("" if "shape" in known else "; repeated frames (frames_axis=) "
                                "would measure the shape from the third cumulant"))
        return est

    def plus_gaussian(self, sigma):
        return self.replace(read_noise=float(np.hypot(self.read_noise, sigma)))

    def rescaled(self, k):
        return self.replace(gain=self.gain * k, offset=self.offset * k,
                            read_noise=self.read_noise * k)

    def _check_x(self, x):
        if bool((x < 0).any()):
            support_error(self.name, "a non-negative clean image", x, x < 0,
                          "photon rates cannot be negative")

    def _sample(self, x, rng):
        k = rng.poisson(np.asarray(x) / self.gain)
        z = np.where(k > 0, rng.gamma(np.maximum(k, 1) * self.shape, self.gain / self.shape),
                     0.0)
        return z + self.offset + rng.normal(0.0, self.read_noise, size=np.shape(x))

    # ----- the pulses convolved with the read noise ----------------------------------------

    def _counts(self, yz_max: float) -> int:
        """Counts to sum: k pulses (mean k gain, spread sqrt(k / shape) gain) lie more than 8
        spreads above ``yz_max`` + 8 read noises beyond this, so q_k(y) is negligible there."""
        c = max(yz_max, 0.0) + 8 * self.read_noise
        u = (8 / math.sqrt(self.shape) + math.sqrt(64 / self.shape + 4 * c / self.gain)) / 2
        return int(math.ceil(u * u)) + 4

    def _lam_hi(self, yz):
        """The bracket of the solve, in photons (as ``poisson-gaussian``'s)."""
        yp = yz.clamp(min=0)
        scale = self.read_noise + self.gain * self.excess
        return (yp + BRACKET * (scale + torch.sqrt(yp * self.gain * self.excess))) / self.gain

    def _pulses(self, yz_max: float, counts: int, dtype, device):
        """Quadrature of k pulses: nodes z and log masses (counts x nodes), k = 1..counts."""
        sig, g, a = self.read_noise, self.gain, self.shape
        z_hi = max(yz_max, 0.0) + 12 * sig + g
        # bins of a sixth of the read noise: their masses are exact (the CDF), and the read
        # noise smooths whatever of the pulses' shape is finer than that
        dz = min(sig / 6, z_hi / 64)
        n = int(math.ceil(z_hi / dz))
        if n > _MAX_NODES:
            n = _MAX_NODES
            dz = z_hi / n
        edges = torch.arange(n + 1, dtype=dtype, device=device) * dz
        k = torch.arange(1, counts + 1, dtype=dtype, device=device)[:, None]
        u = edges[None, :] * (a / g)
        cdf = torch.special.gammainc(k * a, u)
        sf = torch.special.gammaincc(k * a, u)
        # the bins' masses from the CDF below the median and from the survival function
        # above it: a difference of two numbers near 1 would lose the tail (y many gains
        # above k pulses), and with it the score of bright pixels
        mass = torch.where(cdf[:, :-1] < 0.5, cdf[:, 1:] - cdf[:, :-1],
                           sf[:, :-1] - sf[:, 1:]).clamp(min=0)
        return (edges[1:] + edges[:-1]) / 2, torch.log(mass.clamp(min=1e-300))

    def _log_q(self, yz, counts: int):
        """log q_k(yz) and d/dy log q_k(yz) for k = 0..counts, yz 1-D: (len(yz), counts+1)."""
        sig = self.read_noise
        z, logm = self._pulses(float(yz.max()), counts, yz.dtype, yz.device)
        out_q = torch.empty(yz.numel(), counts + 1, dtype=yz.dtype, device=yz.device)
        out_d = torch.empty_like(out_q)
        out_q[:, 0] = -yz ** 2 / (2 * sig ** 2) - math.log(sig * math.sqrt(2 * math.pi))
        out_d[:, 0] = -yz / sig ** 2
        block = max(1, _ELEMENTS // (counts * z.numel()))
        for i in range(0, yz.numel(), block):
            yb = yz[i:i + block, None]
            dev = yb - z[None, :]  # (b, nodes)
            logn = -dev ** 2 / (2 * sig ** 2) - math.log(sig * math.sqrt(2 * math.pi))
            t = logm[None, :, :] + logn[:, None, :]  # (b, counts, nodes)
            lq = torch.logsumexp(t, dim=-1)
            w = torch.softmax(t, dim=-1)
            out_q[i:i + block, 1:] = lq
            out_d[i:i + block, 1:] = -(w * dev[:, None, :]).sum(-1) / sig ** 2
        return out_q, out_d

    def _posterior(self, lam, logq, d):
        """Score f and df/dlam for rates ``lam`` (..., J) given rows' logq, d (..., K+1)."""
        k = torch.arange(logq.shape[-1], dtype=lam.dtype, device=lam.device)
        logw = (torch.xlogy(k, lam.unsqueeze(-1)) - torch.lgamma(k + 1)
                + logq.unsqueeze(-2))
        w = torch.softmax(logw, dim=-1)
        f = (w * d.unsqueeze(-2)).sum(-1)
        kd = (w * k * d.unsqueeze(-2)).sum(-1) - (w * k).sum(-1) * f  # Cov_w(k, d)
        return f, kd / lam.clamp(min=1e-300)

    # ----- likelihood, score and solve -----------------------------------------------------

    def _log_prob(self, x, y):
        yz = (y - self.offset).reshape(-1)
        xf = x.reshape(-1).clamp(min=0)
        counts = self._counts(float(yz.max()))
        logq, _ = self._log_q(yz, counts)
        k = torch.arange(counts + 1, dtype=y.dtype, device=y.device)
        lam = (xf / self.gain)[:, None]
        logp = torch.xlogy(k, lam) - lam - torch.lgamma(k + 1) + logq
        return torch.logsumexp(logp, dim=-1).reshape(y.shape)

    def _score(self, x, y):
        yz = (y - self.offset).reshape(-1)
        counts = self._counts(float(yz.max()))
        logq, d = self._log_q(yz, counts)
        f, _ = self._posterior((x.reshape(-1) / self.gain).clamp(min=0)[:, None], logq, d)
        return f[:, 0].reshape(y.shape)

    def _table(self, rows, key):
        ck = None if key is None else (key, self.gain, self.shape, self.offset,
                                       self.read_noise, str(rows.device))
        if ck is not None and ck in _cache:
            _cache.move_to_end(ck)
            return _cache[ck]
        yz = rows - self.offset
        counts = self._counts(float(yz.max()))
        logq, d = self._log_q(yz, counts)
        lam = lam_nodes(self._lam_hi(yz))
        f = torch.empty_like(lam)
        slope = torch.empty_like(lam)
        for i in range(0, rows.numel(), 64):
            f[i:i + 64], slope[i:i + 64] = self._posterior(lam[i:i + 64], logq[i:i + 64],
                                                           d[i:i + 64])
        f[:, 0] = d[:, 0]  # lam = 0: no photon, the read noise's score
        inv = 1.0 / slope.clamp(min=1e-300)
        inv[:, 0] = lam[:, 1] / (f[:, 1] - f[:, 0]).clamp(min=1e-300)
        table = (MonotoneRows(lam, f, inv), d[:, 0])
        if ck is not None:
            _cache[ck] = table
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return table

    def _solve(self, y, s):
        dt, shape = y.dtype, y.shape
        yd, sd = y.double().reshape(-1), s.double().reshape(-1)
        rows, index, _, key = value_rows(yd, grid=4096)  # else the nearest of 4096 rows
        table, f0 = self._table(rows, key)
        lam = table.invert(index, sd)
        x = torch.where(sd > f0[index], self.gain * lam, torch.zeros_like(lam))
        return x.reshape(shape).to(dt)
