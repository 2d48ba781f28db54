"""Stochastic denoising (issue 24; Kawar et al. 2021, Algorithm 1) on Set12 with Gaussian
noise (sigma = 25): the paper's residual tests on each sample, against the MMSE denoiser of
the same prior network.

A prior (``train(objective="prior")``: the score of clean images at every noise level) is
trained on the clean BSD68 images; per Set12 image, y = x + N(0, sigma^2), the MMSE result is
Tweedie's y + sigma^2 s(y, sigma) from the same network (as the paper does with NCSNv2), and
``n`` samples come from ``sample_posterior``. For each sample: the residual y - x_s has std
sigma (the paper: within 2 %) and is white (the largest |correlation| of adjacent pixels over
the 8 directions, the paper: < 0.02) and normal (D'Agostino-Pearson p-value); its MSE is at
most 2x the MMSE result's (the paper's bound); and the samples differ (their mean per-pixel
spread).

Usage:
    python benchmarks/langevin.py                  # about 25 minutes on 2 CPU cores
    python benchmarks/langevin.py --images 4 --samples 4 --steps 2000
    python benchmarks/langevin.py --prior P --crop 128 --images 6   # a saved prior, crops
    python benchmarks/langevin.py --tiny           # smoke test
Writes benchmarks/results/langevin.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, finish, header, need


def max_adjacent_correlation(r: np.ndarray) -> float:
    """The largest |Pearson correlation| of a residual with itself shifted by one pixel, over
    the 8 directions (4 distinct shifts)."""
    best = 0.0
    h, w = r.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        cols_a = slice(dx, w) if dx >= 0 else slice(0, w + dx)
        cols_b = slice(0, w - dx) if dx >= 0 else slice(-dx, w)
        a, b = r[dy:, cols_a], r[:h - dy, cols_b]
        best = max(best, abs(float(np.corrcoef(a.ravel(), b.ravel())[0, 1])))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps of the prior")
    p.add_argument("--prior", type=Path, help="a saved prior (train(objective='prior') on "
                                             "clean BSD68) instead of training one")
    p.add_argument("--steps-per-level", type=int, default=None,
                   help="Langevin steps at each level (default: the library's)")
    p.add_argument("--crop", type=int, default=None,
                   help="the central CROP x CROP pixels of each Set12 image (noise drawn on "
                        "the whole image first, so the same pixels as without it)")
    p.add_argument("--preset", default="default")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--images", type=int, default=12, help="Set12 images used")
    p.add_argument("--samples", type=int, default=4, help="samples per image")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "langevin.json")
    cfg = p.parse_args(argv)
    root = need(DATA / "natural")
    train = [imread(f).astype(np.float32) for f in sorted((root / "BSD68").glob("*.png"))]
    test = [imread(f).astype(np.float32) for f in sorted((root / "Set12").glob("*.png"))]
    test = test[:cfg.images]
    patch, ratio = None, 0.98
    if cfg.tiny:
        train, test, cfg.steps, patch, ratio = train[:4], [t[:64, :64] for t in test[:1]], 3, \
            32, 0.8
    t0 = time.perf_counter()
    if cfg.prior:
        prior = sd.load_model(cfg.prior)
    else:
        prior = sd.train(train, objective="prior", preset=cfg.preset, steps=cfg.steps, seed=0,
                         patch_size=patch, device=cfg.device)
    out = {**header(cfg), "train_seconds": time.perf_counter() - t0, "images": []}
    scale = float(prior.scale[0])
    rng = np.random.default_rng(12)
    print("| image | MMSE PSNR | sample PSNR | MSE / MMSE | residual std / sigma | "
          "max adjacent rho | normality p | spread | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, x in enumerate(test):
        y = (x + rng.normal(0, cfg.sigma, x.shape)).astype(np.float32)
        if cfg.crop:
            c = [slice(max(0, (n - cfg.crop) // 2), max(0, (n - cfg.crop) // 2) + cfg.crop)
                 for n in x.shape]
            x, y = x[tuple(c)], y[tuple(c)]
        s = prior.predict(y, sigma_a=cfg.sigma / scale, device=cfg.device)
        mmse = y + cfg.sigma ** 2 * s
        t1 = time.perf_counter()
        more = {} if cfg.steps_per_level is None else {"steps_per_level": cfg.steps_per_level}
        xs = sd.sample_posterior(y, prior, sigma=cfg.sigma, n_samples=cfg.samples, rng=i,
                                 ratio=ratio, device=cfg.device, **more)
        sec = time.perf_counter() - t1
        mse_mmse = float(np.mean((mmse - x) ** 2))
        for k, xk in enumerate(xs):
            r = (y - xk).astype(np.float64)
            sub = r.ravel()[:: max(1, r.size // 5000)]  # the test's power grows with n
            row = {"image": i + 1, "sample": k, "psnr_mmse": 10 * np.log10(255 ** 2 / mse_mmse),
                   "psnr_sample": float(10 * np.log10(255 ** 2 / np.mean((xk - x) ** 2))),
                   "mse_ratio": float(np.mean((xk - x) ** 2)) / mse_mmse,
                   "residual_std_ratio": float(r.std() / cfg.sigma),
                   "max_rho": max_adjacent_correlation(r),
                   "normality_p": float(stats.normaltest(sub).pvalue),
                   "spread": float(xs.std(axis=0).mean()), "seconds": sec}
            out["images"].append(row)
            print(f"| {i + 1}.{k} | {row['psnr_mmse']:.2f} | {row['psnr_sample']:.2f} | "
                  f"{row['mse_ratio']:.2f} | {row['residual_std_ratio']:.4f} | "
                  f"{row['max_rho']:.4f} | {row['normality_p']:.2f} | {row['spread']:.2f} | "
                  f"{sec:.0f} |", flush=True)
    rows = out["images"]
    keys = ("psnr_mmse", "psnr_sample", "mse_ratio", "residual_std_ratio", "max_rho",
            "normality_p", "spread")
    out["mean"] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out["passed"] = {
        "residual_std_within_2pct": float(np.mean([abs(r["residual_std_ratio"] - 1) < 0.02
                                                   for r in rows])),
        "rho_below_0.02": float(np.mean([r["max_rho"] < 0.02 for r in rows])),
        "mse_at_most_2x": float(np.mean([r["mse_ratio"] <= 2 for r in rows]))}
    m = out["mean"]
    print(f"| mean | {m['psnr_mmse']:.2f} | {m['psnr_sample']:.2f} | {m['mse_ratio']:.2f} | "
          f"{m['residual_std_ratio']:.4f} | {m['max_rho']:.4f} | {m['normality_p']:.2f} | "
          f"{m['spread']:.2f} | |")
    print("share of samples passing:", {k: f"{100 * v:.0f} %" for k, v in out["passed"].items()})
    finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
