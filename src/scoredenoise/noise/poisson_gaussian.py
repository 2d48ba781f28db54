"""The fluorescence camera model in ADU: gain, offset, read noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import param, register
from ._mixture import GaussianMixtureModel
from .poisson import Poisson


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
              "x = (z + gain/2) exp(gain s)")
    no_root = "where y - offset + read_noise^2 s + gain/2 <= 0: x = 0"
    reference = "Xie et al. 2023, Eq. 10-13 and 19-23; Foi et al. 2008 for the camera model"

    gain: float = param(1.0, unit="data units per photo-electron", low=0.0, low_open=True,
                        description="camera conversion gain (ADU per electron): the slope of "
                                    "variance against mean")
    offset: float = param(0.0, unit="data units",
                          description="camera offset / black level added to every pixel")
    read_noise: float = param(1.0, unit="data units", low=0.0,
                              description="standard deviation of the Gaussian read noise")

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

    def rescaled(self, k):
        return self.replace(gain=self.gain * k, offset=self.offset * k,
                            read_noise=self.read_noise * k)
