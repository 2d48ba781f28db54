"""Calibration and cost of the posterior standard deviation map (issue 24) on Set12 with
Gaussian noise (sigma = 25, the paper's Table 1 row 1; ``--row 2``: correlated Gaussian noise,
any row of benchmarks/quality.py's table): a score model trained on the noisy BSD68 images as
benchmarks/quality.py does, then per Set12 image the denoised result, its std map, and how the
actual error compares with the stated std: the rms of error / std (1 when calibrated) and the
share of pixels within 1.96 std (95 % when calibrated), with the map's cost against the
denoising's.

With ``--dataset fmd``: real confocal frames (FMD BPAE nuclei), trained on 4 raw frames of
each of fields 1-3 with the library's defaults (or ``--model``), tested on 4 raw frames of
field 4, each with the ``poisson-gaussian`` model ``estimate_noise`` measures on it (the
user's path), against the field's 50-frame average. The average is not the truth: its own
noise (the camera's variance at its level / 50, plus the 8-bit file's rounding, 1/12) is part
of the error, so besides error / std the table gives error / sqrt(std^2 + that variance),
which is what a calibrated map gives against this reference. The specimen drifts over the 50
frames: against frames 0-3 (the default) the average also differs from the frame's signal by
about 2.5 ADU^2 of MSE, which no map states; ``--fmd-frames middle`` tests frames 23-26,
whose signal the average matches.

Usage:
    python benchmarks/uncertainty.py                 # about 5 minutes on 2 CPU cores
    python benchmarks/uncertainty.py --dataset fmd   # about 8 minutes (training included)
    python benchmarks/uncertainty.py --dataset fmd --fmd-frames middle   # frames 23-26
    python benchmarks/uncertainty.py --spacing 2 --repeats 2
    python benchmarks/uncertainty.py --row 2         # correlated noise (gaussian-correlated)
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
from _common import (
    DATA,
    FMD_FRAMES,
    ROOT,
    add_fmd_frames_flag,
    add_network_flags,
    finish,
    fmd_average,
    fmd_frames,
    header,
    need,
    network,
)
from quality import ROWS


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["set12", "fmd"], default="set12")
    p.add_argument("--model", type=Path, help="fmd: a trained model instead of training one")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: 600 on Set12 as quality.py, the library's "
                        "on FMD)")
    p.add_argument("--sigma", type=float, default=None,
                   help="set12, row 1: the Gaussian noise's std (default 25)")
    p.add_argument("--row", type=int, default=1, choices=sorted(ROWS),
                   help="set12: the noise of this row of benchmarks/quality.py (default 1: "
                        "gaussian, sigma 25; 2: gaussian-correlated)")
    p.add_argument("--spacing", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    add_network_flags(p)  # --unconditioned / --conditioned
    add_fmd_frames_flag(p)  # --dataset fmd: frames 0-3 or 23-26 of field 4
    p.add_argument("--floor", type=float, default=None,
                   help="the std map's floor, a fraction of the noise's std (default: the "
                        "library's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "uncertainty.json")
    cfg = p.parse_args(argv)
    t0 = time.perf_counter()
    data = _fmd(cfg) if cfg.dataset == "fmd" else _set12(cfg)
    model, tests, peak = data
    out = {**header(cfg), "train_seconds": time.perf_counter() - t0, "images": []}
    print("| image | PSNR (dB) | rms(error / std) | within 1.96 std | rms(error / total) | "
          "within 1.96 total | mean std | rms error | map / denoise time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (name, y, x, nm, ref_var) in enumerate(tests):
        sig = model.resolve_sigma_a(y, "auto", nm, device=cfg.device)
        sig = sig if model.conditioned else "auto"  # an unconditioned network's is fixed
        t1 = time.perf_counter()
        den = sd.denoise(y, model, nm, sigma_a=sig, device=cfg.device)
        t_den = time.perf_counter() - t1
        t1 = time.perf_counter()
        std = sd.posterior_std(y, model, nm, sigma_a=sig, spacing=cfg.spacing,
                               repeats=cfg.repeats, device=cfg.device, rng=i,
                               floor=cfg.floor)
        t_std = time.perf_counter() - t1
        err = den.astype(np.float64) - x
        z = err / np.maximum(std, 1e-6)
        zt = err / np.sqrt(np.maximum(std.astype(np.float64) ** 2 + ref_var, 1e-12))
        row = {"image": name, "psnr": float(10 * np.log10(peak ** 2 / np.mean(err ** 2))),
               "rms_z": float(np.sqrt(np.mean(z ** 2))),
               "coverage_95": float(np.mean(np.abs(z) < 1.96)),
               "rms_z_total": float(np.sqrt(np.mean(zt ** 2))),
               "coverage_95_total": float(np.mean(np.abs(zt) < 1.96)),
               "mean_std": float(std.mean()), "rms_error": float(np.sqrt(np.mean(err ** 2))),
               "cost_ratio": t_std / t_den, "sigma_a": sig}
        out["images"].append(row)
        print(f"| {row['image']} | {row['psnr']:.2f} | {row['rms_z']:.2f} | "
              f"{100 * row['coverage_95']:.1f} % | {row['rms_z_total']:.2f} | "
              f"{100 * row['coverage_95_total']:.1f} % | {row['mean_std']:.2f} | "
              f"{row['rms_error']:.2f} | {row['cost_ratio']:.1f} |", flush=True)
    keys = ("psnr", "rms_z", "coverage_95", "rms_z_total", "coverage_95_total", "mean_std",
            "rms_error", "cost_ratio")
    out["mean"] = {k: float(np.mean([r[k] for r in out["images"]])) for k in keys}
    m = out["mean"]
    print(f"| mean | {m['psnr']:.2f} | {m['rms_z']:.2f} | {100 * m['coverage_95']:.1f} % | "
          f"{m['rms_z_total']:.2f} | {100 * m['coverage_95_total']:.1f} % | "
          f"{m['mean_std']:.2f} | {m['rms_error']:.2f} | {m['cost_ratio']:.1f} |")
    return finish(out, cfg.out, t0)


def _set12(cfg):
    """Noisy BSD68 -> a score model; Set12 with the same Gaussian noise (the truth exact)."""
    root = need(DATA / "natural")
    train = [imread(f).astype(np.float32) for f in sorted((root / "BSD68").glob("*.png"))]
    test = [imread(f).astype(np.float32) for f in sorted((root / "Set12").glob("*.png"))]
    patch, steps = None, cfg.steps or 600
    if cfg.tiny:
        train, test, steps, patch = train[:4], [t[:64, :64] for t in test[:2]], 3, 32
    name, params, extra = ROWS[cfg.row]
    if cfg.sigma is not None:
        if cfg.row != 1:
            raise SystemExit("--sigma sets row 1's Gaussian noise; other rows have their own")
        params = {"sigma": cfg.sigma}
    nm = sd.get_noise_model(name, **params)
    rng = np.random.default_rng(1)
    train_noisy = [nm.sample(c, rng).astype(np.float32) for c in train]
    test_noisy = [nm.sample(c, rng).astype(np.float32) for c in test]
    model = sd.train(train_noisy, steps=steps, seed=0, patch_size=patch, extra_noise=extra,
                     conditioned=network(cfg), device=cfg.device)
    return model, [(str(i + 1), y, x, nm, 0.0)
                   for i, (y, x) in enumerate(zip(test_noisy, test))], 255.0


def _fmd(cfg):
    """FMD fields 1-3 -> a score model (or --model); field 4's raw frames against the
    50-frame average, whose own variance is returned with each frame."""
    picks = FMD_FRAMES[cfg.fmd_frames]
    frames = {f: fmd_frames(f, range(4)) for f in (1, 2, 3)}
    frames[4] = fmd_frames(4, picks)
    gt = fmd_average(4)
    n_test, steps, patch = 4, cfg.steps, None
    if cfg.tiny:
        frames = {f: v[:, 224:288, 224:288] for f, v in frames.items()}  # cells
        gt, n_test, steps, patch = gt[224:288, 224:288], 1, 3, 32
    if cfg.model:
        model = sd.load_model(cfg.model)
    else:
        kw = {} if steps is None else {"steps": steps}
        model = sd.train([frames[f] for f in (1, 2, 3)], seed=0, patch_size=patch,
                         conditioned=network(cfg), device=cfg.device, **kw)
    tests = []
    for i in range(n_test):
        y = frames[4][i]
        nm = sd.estimate_noise(y, "poisson-gaussian").noise_model
        # the average of 50 frames: the camera's variance at its level / 50, and rounding
        ref_var = np.maximum(nm.noise_level(gt), 0.0) / 50 + 1 / 12
        tests.append((f"field 4 frame {picks[i]}", y, gt, nm, ref_var))
    return model, tests, 255.0


if __name__ == "__main__":
    main()
