"""scoredenoise: self-supervised denoising with score functions (Xie et al., NeurIPS 2023).

Train a network on noisy images only to learn the score s(y) = grad log p(y), then solve
s(y) = grad_y log p(y|x) for the clean image x under any noise model of the registry, without
retraining when the noise model or its parameters change.

This package imports neither Qt nor napari; the napari plugin lives in
``scoredenoise._napari`` and is installed with the ``[napari]`` extra.
"""

from ._axes import check_axes, default_axes
from ._chunked import ChunkCache
from ._progress import Cancelled
from ._version import __version__
from .api import ImplausibleSolutionWarning, denoise, provenance
from .batch import denoise_files
from .estimate import (
    NoiseEstimate,
    estimate_noise,
    fit_noise_level,
    noise_level_function,
    photon_transfer,
)
from .estimate_kernel import NoiseKernel, estimate_noise_kernel
from .io import open_image
from .langevin import sample_posterior, train_prior
from .model import ModelFileError, Score, ScoreModel, load_model
from .noise import (
    NoiseModel,
    NoiseModelError,
    get_noise_model,
    list_noise_models,
    noise_model_from_dict,
)
from .selection import select_noise_parameters
from .smoothing import SigmaA, select_sigma_a
from .to_file import denoise_to_file
from .train_config import TrainConfig
from .training import time_per_step, train
from .uncertainty import posterior_std
from .units import PhotonMap, estimate_photon_map

__all__ = [
    "__version__",
    "train",
    "TrainConfig",
    "time_per_step",
    "denoise",
    "sample_posterior",
    "train_prior",
    "provenance",
    "ImplausibleSolutionWarning",
    "denoise_to_file",
    "denoise_files",
    "open_image",
    "default_axes",
    "check_axes",
    "ChunkCache",
    "estimate_noise",
    "NoiseEstimate",
    "estimate_noise_kernel",
    "NoiseKernel",
    "noise_level_function",
    "fit_noise_level",
    "photon_transfer",
    "select_noise_parameters",
    "load_model",
    "ScoreModel",
    "Score",
    "select_sigma_a",
    "SigmaA",
    "PhotonMap",
    "estimate_photon_map",
    "posterior_std",
    "ModelFileError",
    "Cancelled",
    "NoiseModel",
    "NoiseModelError",
    "get_noise_model",
    "list_noise_models",
    "noise_model_from_dict",
]
