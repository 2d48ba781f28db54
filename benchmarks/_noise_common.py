"""What the noise benchmark's parts share: the FMD data, PSNR, a synthetic scene, training."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, need

FMD = DATA / "fmd_confocal_bpae_b"


def psnr(x, ref, peak=255.0):
    return float(10 * np.log10(peak ** 2 / np.mean((np.asarray(x, np.float64) - ref) ** 2)))


def fmd_field(fov: int, crop=None):
    files = sorted((need(FMD) / "raw" / str(fov)).glob("*.png"))
    stack = np.stack([imread(f) for f in files])
    gt = imread(FMD / "gt" / str(fov) / "avg50.png").astype(np.float64)
    if crop:
        stack, gt = stack[:, :crop, :crop], gt[:crop, :crop]
    return stack, gt


def _blobs(n, peak, seed):
    """A smooth, microscopy-like clean image in [0, peak]: blobs on a ramp."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n))
    img[tuple(rng.integers(0, n, (2, 60)))] = 1.0
    img = gaussian_filter(img, 6) * 40 + np.linspace(0.05, 0.5, n)[None, :]
    return peak * img / img.max()


def _train(noisy, cfg, **kw):
    return sd.train(noisy, preset=cfg.preset, steps=cfg.steps, batch_size=8, patch_size=64,
                    seed=0, device=cfg.device, **kw)
