"""Noise models p(y|x): a registry of small frozen dataclasses.

Every model offers ``sample(x, rng)``, the likelihood score ``score(x, y)`` =
grad_y log p(y|x), ``solve(y, score)`` for the clean image, ``log_prob``, ``residual``,
``rescaled(k)`` and ``to_dict()``/``from_dict()``. See docs/noise-models.md.

Examples
--------
>>> from scoredenoise.noise import get_noise_model, list_noise_models
>>> cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
>>> cam.to_dict()
{'name': 'poisson-gaussian', 'params': {'gain': 2.0, 'offset': 100.0, 'read_noise': 3.0}}
"""

from ._base import (
    NoiseModel,
    NoiseModelError,
    Param,
    get_noise_model,
    list_noise_models,
    noise_model_from_dict,
)
from ._correlation import PAPER_KERNEL, Correlation
from ._local_gaussian import LocalGaussian
from .emccd import Emccd
from .gamma import Gamma
from .gamma_correlated import GammaCorrelated
from .gamma_correlated_plus_gaussian import GammaCorrelatedGaussian
from .gamma_plus_gaussian import GammaGaussian
from .gaussian import Gaussian
from .gaussian_correlated import GaussianCorrelated
from .gaussian_signal import GaussianSignal
from .gaussian_signal_correlated import GaussianSignalCorrelated
from .poisson import Poisson
from .poisson_correlated import PoissonCorrelated
from .poisson_correlated_plus_gaussian import PoissonCorrelatedGaussian
from .poisson_gaussian import PoissonGaussian
from .poisson_plus_gaussian import PoissonGaussianMixture
from .rayleigh import Rayleigh
from .rayleigh_correlated import RayleighCorrelated
from .rayleigh_correlated_plus_gaussian import RayleighCorrelatedGaussian
from .rayleigh_plus_gaussian import RayleighGaussian

__all__ = [
    "NoiseModel", "NoiseModelError", "Param", "Correlation", "PAPER_KERNEL", "LocalGaussian",
    "get_noise_model", "list_noise_models", "noise_model_from_dict",
    "Gaussian", "GaussianCorrelated", "GaussianSignal", "GaussianSignalCorrelated",
    "Gamma", "GammaCorrelated", "Poisson", "PoissonCorrelated", "Rayleigh",
    "RayleighCorrelated", "GammaGaussian", "GammaCorrelatedGaussian",
    "PoissonGaussianMixture", "PoissonCorrelatedGaussian", "RayleighGaussian",
    "RayleighCorrelatedGaussian", "PoissonGaussian", "Emccd",
]
