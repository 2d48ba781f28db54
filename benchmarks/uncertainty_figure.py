"""Pictures of the uncertainty on real FMD data (docs/uncertainty.md): a raw frame of field 4,
the result, its posterior standard deviation beside the actual error against the 50-frame
average, and posterior samples (annealed Langevin dynamics) with their spread.

The score model is trained on the raw frames of fields 1-3 (or given with ``--model``); the
prior for the samples on the 50-frame averages of fields 1-3, through the camera's
variance-stabilising transform (``train_prior(..., noise_model=camera)``), with the camera
estimated from field 4's frame as a user would. Writes docs/images/uncertainty_fmd.png (or
``--out``) and the figures (PSNR, mean std and spread) to
benchmarks/results/uncertainty_figure.json (or ``--json``).

Usage:
    python benchmarks/uncertainty_figure.py                       # about 20 min on 2 cores
    python benchmarks/uncertainty_figure.py --model m.sdmodel --prior p.sdmodel
    python benchmarks/uncertainty_figure.py --tiny                # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, need  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="a score model instead of training one")
    p.add_argument("--prior", type=Path, help="a camera prior instead of training one")
    p.add_argument("--prior-steps", type=int, default=1500)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--crop", type=int, default=128, help="side of the sampled crop")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "uncertainty_fmd.png")
    p.add_argument("--json", type=Path,
                   default=ROOT / "benchmarks" / "results" / "uncertainty_figure.json")
    cfg = p.parse_args(argv)
    root = need(DATA / "fmd_confocal_bpae_b")
    raw = {f: np.stack([imread(q) for q in sorted((root / "raw" / str(f)).glob("*.png"))[:4]])
           for f in (1, 2, 3, 4)}
    avg = {f: imread(root / "gt" / str(f) / "avg50.png").astype(np.float32)
           for f in (1, 2, 3, 4)}
    steps, prior_steps, crop, n = None, cfg.prior_steps, cfg.crop, cfg.samples
    if cfg.tiny:
        raw = {f: v[:, :64, :64] for f, v in raw.items()}
        avg = {f: v[:64, :64] for f, v in avg.items()}
        steps, prior_steps, crop, n = 3, 3, 32, 2
    t0 = time.perf_counter()
    model = sd.load_model(cfg.model) if cfg.model else sd.train(
        [raw[f] for f in (1, 2, 3)], seed=0, **({"steps": steps} if steps else {}))
    y = raw[4][0]
    gt = avg[4].astype(np.float64)
    camera = sd.estimate_noise(y, "poisson-gaussian").noise_model
    x = sd.denoise(y, model, camera)
    std = sd.posterior_std(y, model, camera, rng=0)
    prior = sd.load_model(cfg.prior) if cfg.prior else sd.train_prior(
        [avg[f] for f in (1, 2, 3)], noise_model=camera, seed=0, steps=prior_steps,
        **({"patch_size": 32} if cfg.tiny else {}))
    # the crop: the brightest window (nuclei), where the samples have something to disagree on
    h, w = y.shape
    k = max(1, min(h, w) // crop)
    step = max(1, (min(h, w) - crop) // max(k, 1))
    windows = [(i, j) for i in range(0, h - crop + 1, step) for j in range(0, w - crop + 1, step)]
    i0, j0 = max(windows, key=lambda ij: gt[ij[0]:ij[0] + crop, ij[1]:ij[1] + crop].mean())
    win = (slice(i0, i0 + crop), slice(j0, j0 + crop))
    samples = sd.sample_posterior(y[win], prior, noise_model=camera, n_samples=n, rng=0)
    seconds = time.perf_counter() - t0

    def psnr(a, ref):
        return float(10 * np.log10(255.0 ** 2 / np.mean((np.asarray(a, np.float64) - ref) ** 2)))

    err = np.abs(x - gt)
    figures = {
        "crop": [i0, j0, crop], "camera": camera.to_dict()["params"],
        "psnr_noisy": psnr(y, gt), "psnr_result": psnr(x, gt),
        "psnr_result_crop": psnr(x[win], gt[win]),
        "psnr_samples_crop": [psnr(s, gt[win]) for s in samples],
        "psnr_sample_mean_crop": psnr(samples.mean(0), gt[win]),
        "std_mean": float(std.mean()), "error_rms": float(np.sqrt(np.mean(err ** 2))),
        "spread_mean_crop": float(samples.std(0).mean()), "seconds": seconds,
    }
    print(json.dumps(figures, indent=1))
    _plot(cfg.out, y, x, std, err, gt, win, samples, figures)
    cfg.json.parent.mkdir(parents=True, exist_ok=True)
    cfg.json.write_text(json.dumps(figures, indent=1))


def _plot(out, y, x, std, err, gt, win, samples, figures):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = np.percentile(gt, [0.5, 99.8])
    vmax = float(np.percentile(np.concatenate([std.ravel(), err.ravel()]), 99.5))
    panels = [
        ("raw frame (field 4)", y, "gray", (lo, hi)),
        (f"result, {figures['psnr_result']:.2f} dB", x, "gray", (lo, hi)),
        ("posterior std", std, "magma", (0, vmax)),
        ("|result - 50-frame average|", err, "magma", (0, vmax)),
        ("crop: result", x[win], "gray", (lo, hi)),
        ("crop: sample 1", samples[0], "gray", (lo, hi)),
        (f"crop: sample {len(samples)}", samples[-1], "gray", (lo, hi)),
        ("crop: spread of the samples", samples.std(0), "magma", (0, vmax)),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.6), layout="constrained")
    for ax, (title, img, cmap, (a, b)) in zip(axes.ravel(), panels):
        im = ax.imshow(img, cmap=cmap, vmin=a, vmax=b, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        if cmap == "magma":
            fig.colorbar(im, ax=ax, shrink=0.8, label="ADU")
    i, j = win[0].start, win[1].start
    c = win[0].stop - i
    for ax in axes[0, :2]:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), c, c, fill=False, color="c", lw=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
