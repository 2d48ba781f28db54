"""The fluorescence camera model in ADU: gain, offset, read noise."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ._base import NoiseFit, NoiseModelError, param, register
from ._mixture import GaussianMixtureModel
from .poisson import Poisson

#: third-cumulant ratio above photon counting's 1 from which the estimate notes skewed noise
#: (an EMCCD gives 1.5, FMD's confocal photomultiplier 1.26)
_SKEWED = 0.1


@register
@dataclass(frozen=True)
class PoissonGaussian(GaussianMixtureModel):
    """y = gain * Poisson(x / gain) + offset + N(0, read_noise^2), x and y in ADU.

    The noise of CCD, EMCCD (in its gain-corrected units) and sCMOS cameras and of
    photomultipliers: shot noise of the detected photo-electrons, converted to ADU by
    ``gain`` (ADU per electron), on top of a constant ``offset`` (bias, black level) and
    Gaussian ``read_noise`` (ADU). Mean x + offset, variance gain * x + read_noise^2.

    Equivalent to Table 1 row 13 (``poisson+gaussian``) with lam = 1/gain, sigma = read_noise,
    plus the offset. Solved by Algorithm 5: z = y - offset + read_noise^2 s(y), then Eq. (13)
    with lam = 1/gain: x = (z + gain/2) exp(gain s). Where z + gain/2 <= 0 (dark pixels whose
    read noise pulled them below the offset by more than half a photon) x = 0.

    ``exact=True`` solves the exact equation instead: s(y) = E[z - (y - offset) | x, y] /
    read_noise^2, a sum over photon counts, by bracketed Newton (``_solve_exact``). Algorithm
    5 assumes the read noise is large next to a photon's step (the gain); where it is not, as
    on FMD confocal frames (read noise about 1 ADU, gain 3.7), it fails in the dark, and the
    exact solve gains 2.4 dB with the same score (docs/benchmarks.md). It costs a few seconds
    per 512x512 plane on a CPU instead of milliseconds. The output is the signal x above the
    offset: add ``offset`` to compare with raw data or frame averages.

    Examples
    --------
    >>> import numpy as np
    >>> from scoredenoise.noise import PoissonGaussian
    >>> cam = PoissonGaussian(gain=2.0, offset=100.0, read_noise=3.0)
    >>> y = cam.sample(np.full(100_000, 50.0), rng=0)
    >>> round(float(y.mean()), 0), round(float(y.var()) / 10, 0)   # ~150, ~(2*50 + 9)/10
    (150.0, 11.0)
    """

    base_cls = Poisson
    base_field_map = None  # parametrised by gain, not lam: not the generic mixture of Poisson
    name = "poisson-gaussian"
    formula = "y = gain * Poisson(x / gain) + offset + N(0, read_noise^2)"
    summary = ("fluorescence camera noise in ADU: photon shot noise times the gain, plus the "
               "camera offset and Gaussian read noise")
    solver = ("Algorithm 5 then Eq. (13): z = y - offset + read_noise^2 s, "
              "x = (z + gain/2) exp(gain s); exact=True: the exact equation (a sum over "
              "photon counts) by bracketed Newton")
    no_root = "where y - offset + read_noise^2 s + gain/2 <= 0: x = 0"
    reference = "Xie et al. 2023, Eq. 10-13 and 19-23; Foi et al. 2008 for the camera model"

    gain: float = param(1.0, unit="data units per photo-electron", low=0.0, low_open=True,
                        description="camera conversion gain (ADU per electron): the slope of "
                                    "variance against mean")
    offset: float = param(0.0, unit="data units",
                          description="camera offset / black level added to every pixel")
    read_noise: float = param(1.0, unit="data units", low=0.0,
                              description="standard deviation of the Gaussian read noise")

    #: the offset is not identifiable from the variance (only read_noise^2 - gain * offset
    #: is): estimate_noise takes it from the darkest level of the data unless it is given
    estimable = ("gain", "read_noise")

    def noise_level(self, mean):
        return self.gain * (np.asarray(mean) - self.offset) + self.read_noise ** 2

    def fit_noise_level(self, nlf, known: dict):
        """Fit var = gain * (mean - offset) + read_noise^2 to a noise level function.

        Only the slope (gain) and the intercept ``read_noise**2 - gain * offset`` are
        identifiable; a given ``offset`` or ``read_noise`` fixes the other, else the offset is
        the darkest level of the data (``nlf.black_level``), i.e. the darkest regions are
        assumed to receive no photons. Used by :func:`scoredenoise.estimate_noise`.
        """
        if "gain" in known:
            raise NoiseModelError("poisson-gaussian: the gain is what the estimate measures; "
                                  "give offset= or read_noise= only")
        gain, icpt, cov = nlf.affine_fit()
        if nlf.censored and gain > 0:  # refit with the exact clipped moments of the camera
            gain, icpt, cov = self._censored_fit(nlf, known, gain, icpt, cov)
        if gain <= 0:
            raise NoiseModelError(
                f"poisson-gaussian: the variance does not grow with the mean (slope "
                f"{gain:.3g}); the noise is not Poisson-Gaussian, try 'gaussian'")
        se_g, se_c = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
        notes, stderr, derived = [], {"gain": se_g}, {"intercept": icpt, "intercept_stderr": se_c}
        if "offset" in known and "read_noise" in known:
            raise NoiseModelError("poisson-gaussian: give offset= or read_noise=, not both "
                                  "(the intercept fixes the other)")
        if "read_noise" in known:
            read = float(known["read_noise"])
            offset = (read ** 2 - icpt) / gain
            var_o = (se_c ** 2 + (offset ** 2) * se_g ** 2 + 2 * offset * cov[0, 1]) / gain ** 2
            stderr["offset"] = math.sqrt(max(var_o, 0.0))
            estimated = ("gain", "offset")
        else:
            if "offset" in known:
                offset = float(known["offset"])
            else:
                offset = nlf.black_level
                derived["offset_from"] = "darkest level of the data, assumed"
                notes.append(
                    f"offset and read noise are not separately identifiable (only the intercept "
                    f"read_noise^2 - gain * offset = {icpt:.4g} is); offset set to the darkest "
                    f"level of the data, {offset:.4g}, assuming no photons there; pass offset= "
                    f"or read_noise= if you know one")
            r2 = icpt + gain * offset
            var_r2 = se_c ** 2 + offset ** 2 * se_g ** 2 + 2 * offset * cov[0, 1]
            if r2 <= 0:
                notes.append(f"the fitted read noise variance is {r2:.3g} <= 0 at this offset; "
                             f"read noise set to 0")
                r2 = 0.0
            read = math.sqrt(r2)
            stderr["read_noise"] = (math.sqrt(max(var_r2, 0.0)) / (2 * read) if read > 0
                                    else math.sqrt(math.sqrt(max(var_r2, 0.0))))
            estimated = ("gain", "read_noise")
        ratio = nlf.third_cumulant_ratio()
        if ratio is not None:  # repeated frames: is the noise as skewed as photon counts?
            derived["third_cumulant_ratio"], derived["third_cumulant_ratio_stderr"] = ratio
            rho, se = ratio
            if rho > 1 + max(3 * se, _SKEWED):
                notes.append(
                    f"the noise's third cumulant is {rho:.3f} +/- {se:.3f} times that of photon "
                    f"counts with fixed steps: the pulse heights vary (photomultiplier, hybrid "
                    f"detector, EMCCD); 'emccd' models that and estimates its shape from these "
                    f"frames")
        fitted = self.replace(gain=gain, offset=offset, read_noise=read)
        resid = nlf.variance - nlf.model_variance(fitted)
        chi2 = float(np.sum((resid / nlf.stderr) ** 2)) / max(len(resid) - 2, 1)
        return NoiseFit(fitted, stderr, estimated, chi2, derived, notes)

    def _censored_fit(self, nlf, known, gain, icpt, cov):
        """Slope and intercept fitted with the camera's exact clipped moments
        (:meth:`clipped_moments`): near a limit photon counts are far from the normal form
        that :meth:`NoiseLevelFunction.affine_fit` uses (a photon-counting detector's zeros
        are no clipping at all). The free parameters are the gain and the read noise (or the
        offset, where the read noise is given): the read noise's bound 0, where photon
        counters are, is then a smooth point of the fit. Returns the normal form's fit where
        this one fails."""
        from scipy.optimize import least_squares

        if "read_noise" in known:
            read = float(known["read_noise"])

            def camera(theta):  # theta: log gain, offset
                return self.replace(gain=math.exp(theta[0]), offset=theta[1], read_noise=read)

            starts = [(read ** 2 - icpt) / gain]
        else:
            offset = float(known.get("offset", nlf.black_level))

            def camera(theta):  # theta: log gain, read noise (its sign is immaterial)
                return self.replace(gain=math.exp(theta[0]), offset=offset,
                                    read_noise=abs(theta[1]))

            # the normal form's read noise, and none (a photon counter's, which the normal
            # form mistakes for clipped noise: between the two the fit has a ridge)
            starts = [math.sqrt(max(icpt + gain * offset, 0.0)), 0.0]

        def resid(theta):
            return (nlf.variance - nlf.model_variance(camera(theta))) / nlf.stderr

        best = None
        for t0 in starts:
            try:
                r = least_squares(resid, [math.log(gain), t0], x_scale="jac")
            except (ValueError, OverflowError, NoiseModelError):
                continue
            if r.success and (best is None or r.cost < best.cost):
                best = r
        if best is None:
            return gain, icpt, cov
        dof = max(len(best.fun) - 2, 1)
        cov_t = np.linalg.pinv(best.jac.T @ best.jac) * max(
            1.0, float(np.sum(best.fun ** 2)) / dof)
        cam = camera(best.x)
        g, t = cam.gain, best.x[1]
        icpt = cam.read_noise ** 2 - g * cam.offset
        # from (log gain, t) to (gain, intercept = read^2 - gain * offset)
        d = (np.array([[g, 0.0], [-g * t, -g]]) if "read_noise" in known else
             np.array([[g, 0.0], [-g * cam.offset, 2 * t]]))
        return g, float(icpt), d @ cov_t @ d.T

    def _make_base(self):
        return Poisson(lam=1.0 / self.gain)

    @property
    def gaussian_sigma(self):
        return self.read_noise

    @property
    def offset_value(self):
        return self.offset

    def plus_gaussian(self, sigma):
        return self.replace(read_noise=float(np.hypot(self.read_noise, sigma)))

    def stabilise(self, y):
        """The generalized Anscombe transform (Murtagh et al. 1995; Makitalo and Foi 2013) of
        noisy data: t = (2 / gain) sqrt(max(gain (y - offset) + 3/8 gain^2 + read_noise^2,
        0)), whose noise is close to N(0, 1) at every signal level (variance within 1 % from
        about 3 photo-electrons a pixel up; 0.82 at one). ``y`` in ADU as the camera gives
        it (offset included). The clean image's counterpart is :meth:`stabilise_clean`."""
        y = np.asarray(y, dtype=np.float64)
        g, r = self.gain, self.read_noise
        return (2.0 / g) * np.sqrt(np.maximum(g * (y - self.offset) + 0.375 * g * g + r * r,
                                              0.0))

    def stabilise_clean(self, x):
        """Where the transformed noisy data centre for a clean image ``x`` (ADU, offset
        included): E[stabilise(y) | x], so that stabilise(y) = stabilise_clean(x) + noise of
        mean 0 and variance about 1. Differs from ``stabilise(x)`` by up to 0.18 of the
        noise's std at one photo-electron a pixel (0.03 at 100), the bias that Makitalo and
        Foi's exact unbiased inverse removes; computed once per camera from the counts'
        distribution (a table, interpolated)."""
        x = np.maximum(np.asarray(x, dtype=np.float64) - self.offset, 0.0)
        grid, table = _clean_transform_table(self.gain, self.read_noise)
        inside = np.interp(x, grid, table)
        far = self.stabilise(x + self.offset) - _far_bias(x / self.gain)
        return np.where(x <= grid[-1], inside, far)

    def unstabilise(self, t):
        """The inverse of :meth:`stabilise_clean`: the clean ADU value (offset included) of a
        value ``t`` of the transformed domain; values below the transform of a zero signal
        map to the offset. Right for samples of the clean image drawn in that domain
        (samples map to samples)."""
        t = np.asarray(t, dtype=np.float64)
        grid, table = _clean_transform_table(self.gain, self.read_noise)
        g, r = self.gain, self.read_noise
        inside = np.interp(t, table, grid)  # table increases with the signal
        # beyond the table: invert t = T(x) - 1 / (4 sqrt(photons)) by fixed-point steps
        # (the bias changes slowly with x: three steps reach 1e-9 of the signal)
        far = np.full_like(t, grid[-1])
        for _ in range(4):
            tt = t + _far_bias(far / g)
            far = ((g * tt / 2.0) ** 2 - 0.375 * g * g - r * r) / g
        return np.where(t <= table[-1], inside, far) + self.offset

    def rescaled(self, k):
        return self.replace(gain=self.gain * k, offset=self.offset * k,
                            read_noise=self.read_noise * k)


def _far_bias(photons):
    """E[t] - T(x) for many photons: the transform's second-order bias, -1 / (4 sqrt(n))
    in units of the noise's std (the Anscombe transform's expansion; the read noise's share
    is of higher order)."""
    return 1.0 / (4.0 * np.sqrt(np.maximum(photons, 1.0)))


@functools.lru_cache(maxsize=32)
def _clean_transform_table(gain: float, read_noise: float):
    """(x, E[stabilise(y) | x]) for signals x from 0 to 400 photo-electrons (ADU above the
    offset): the expectation over the Poisson counts and, by Gauss-Hermite quadrature, the
    read noise. Beyond 400 photons the asymptotic bias is below 0.0125 of the noise's std."""
    g, r = float(gain), float(read_noise)
    lam = np.concatenate([np.linspace(0.0, 4.0, 81)[:-1], np.geomspace(4.0, 400.0, 200)])
    k = np.arange(0, int(400 + 12 * np.sqrt(400) + 20))
    nodes, weights = np.polynomial.hermite_e.hermegauss(24)
    weights = weights / weights.sum()
    # T(g k + n) for every count k and quadrature node n (offset removed)
    arg = g * (g * k[:, None] + r * nodes[None, :]) + 0.375 * g * g + r * r
    t_k = ((2.0 / g) * np.sqrt(np.maximum(arg, 0.0))) @ weights
    from scipy.stats import poisson
    pk = poisson.pmf(k[None, :], lam[:, None])
    table = pk @ t_k
    return lam * g, np.maximum.accumulate(table)
