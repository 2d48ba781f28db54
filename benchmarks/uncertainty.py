"""Calibration and cost of the posterior standard deviation map (issue 24) on Set12 with
Gaussian noise (sigma = 25, the paper's Table 1 row 1): a score model trained on the noisy
BSD68 images as benchmarks/quality.py does, then per Set12 image the denoised result, its
std map, and how the actual error compares with the stated std: the rms of error / std (1
when calibrated) and the share of pixels within 1.96 std (95 % when calibrated), with the
map's cost against the denoising's.

Usage:
    python benchmarks/uncertainty.py                 # about 5 minutes on 2 CPU cores
    python benchmarks/uncertainty.py --spacing 2 --repeats 2
    python benchmarks/uncertainty.py --tiny          # smoke test
Writes benchmarks/results/uncertainty.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, finish, header, need


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--spacing", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--unconditioned", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "uncertainty.json")
    cfg = p.parse_args(argv)
    root = need(DATA / "natural")
    train = [imread(f).astype(np.float32) for f in sorted((root / "BSD68").glob("*.png"))]
    test = [imread(f).astype(np.float32) for f in sorted((root / "Set12").glob("*.png"))]
    patch = None
    if cfg.tiny:
        train, test, cfg.steps, patch = train[:4], [t[:64, :64] for t in test[:2]], 3, 32
    nm = sd.get_noise_model("gaussian", sigma=cfg.sigma)
    rng = np.random.default_rng(1)
    train_noisy = [nm.sample(c, rng).astype(np.float32) for c in train]
    test_noisy = [nm.sample(c, rng).astype(np.float32) for c in test]
    t0 = time.perf_counter()
    model = sd.train(train_noisy, steps=cfg.steps, seed=0, patch_size=patch,
                     conditioned=not cfg.unconditioned, device=cfg.device)
    out = {**header(cfg), "train_seconds": time.perf_counter() - t0, "images": []}
    print("| image | PSNR (dB) | rms(error / std) | within 1.96 std | mean std | "
          "rms error | map / denoise time |")
    print("|---|---|---|---|---|---|---|")
    for i, (y, x) in enumerate(zip(test_noisy, test)):
        sig = model.resolve_sigma_a(y, "auto", nm, device=cfg.device)
        t1 = time.perf_counter()
        den = sd.denoise(y, model, nm, sigma_a=sig, device=cfg.device)
        t_den = time.perf_counter() - t1
        t1 = time.perf_counter()
        std = sd.posterior_std(y, model, nm, sigma_a=sig, spacing=cfg.spacing,
                               repeats=cfg.repeats, device=cfg.device, rng=i)
        t_std = time.perf_counter() - t1
        err = den.astype(np.float64) - x
        z = err / np.maximum(std, 1e-6)
        row = {"image": i + 1, "psnr": float(10 * np.log10(255.0 ** 2 / np.mean(err ** 2))),
               "rms_z": float(np.sqrt(np.mean(z ** 2))),
               "coverage_95": float(np.mean(np.abs(z) < 1.96)),
               "mean_std": float(std.mean()), "rms_error": float(np.sqrt(np.mean(err ** 2))),
               "cost_ratio": t_std / t_den, "sigma_a": sig}
        out["images"].append(row)
        print(f"| {row['image']} | {row['psnr']:.2f} | {row['rms_z']:.2f} | "
              f"{100 * row['coverage_95']:.1f} % | {row['mean_std']:.2f} | "
              f"{row['rms_error']:.2f} | {row['cost_ratio']:.1f} |", flush=True)
    keys = ("psnr", "rms_z", "coverage_95", "mean_std", "rms_error", "cost_ratio")
    out["mean"] = {k: float(np.mean([r[k] for r in out["images"]])) for k in keys}
    m = out["mean"]
    print(f"| mean | {m['psnr']:.2f} | {m['rms_z']:.2f} | {100 * m['coverage_95']:.1f} % | "
          f"{m['mean_std']:.2f} | {m['rms_error']:.2f} | {m['cost_ratio']:.1f} |")
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
