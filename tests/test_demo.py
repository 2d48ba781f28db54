import numpy as np
import pytest

from scoredenoise.demo import FMD_CONFOCAL_BPAE_B, run_demo, sample_data
from scoredenoise.io import read_image


def test_bundled_sample_data():
    frames, gt = sample_data()
    assert frames.shape == (4, 256, 256) and gt.shape == (256, 256)
    assert frames.dtype == np.uint8
    # real Poisson-Gaussian data: variance grows with the mean as the documented fit says
    res = frames.astype(float) - gt
    bright, dark = gt > 60, gt < 8
    ratio = res[:, bright].var() / res[:, dark].var()
    assert ratio > 5


@pytest.mark.slow
def test_demo_writes_outputs_and_improves_psnr(tmp_path, capsys):
    res = run_demo(tmp_path, steps=150, quiet=True)
    assert res["psnr_poisson_gaussian"] > res["psnr_noisy"] + 2.0
    # the other solver on the same score denoises too. Which of the two is better is not a
    # property of a 150-step network: the ranking flips with the training's path (exact
    # against Algorithm 5: 37.11 / 36.34 dB on 1 thread, 37.54 / 37.61 on 2; 37.45 / 38.02
    # at 250 steps, 38.30 / 36.67 at 300); the exact solve's advantage is tested with the
    # exact score (tests/noise/test_exact_mixture.py) and measured on trained models
    # (docs/benchmarks.md)
    assert res["psnr_algorithm5"] > res["psnr_noisy"] + 2.0
    out = read_image(tmp_path / "denoised.tif")
    assert out.extra["noise_model"]["params"] == FMD_CONFOCAL_BPAE_B
    assert out.extra["exact_solve"] is True
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
    assert "PSNR poisson-gaussian" in capsys.readouterr().out
