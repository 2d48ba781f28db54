"""How skewed real detectors' noise is: the third cumulant against photon counting's.

Photon counts that each add a fixed step (``poisson-gaussian``) have a third cumulant that
grows with the mean at the square of the variance's slope (ratio 1, whatever the read
noise). Detectors that multiply each photo-electron by a random gain (``emccd``: EMCCDs,
photomultipliers, hybrid detectors) give ``(1 + 2/shape) / (1 + 1/shape)``: 1.5 for an
EMCCD's exponential pulses. The ratio tells which model describes the data and gives
``emccd``'s shape.

Measured two ways:

- ``fmd``: FMD confocal fields 1-4, 50 repeated frames each: the library's photon transfer
  (``photon_transfer(frames).third_cumulant_ratio()``) and the shape that
  ``estimate_noise(frames, "emccd", frames_axis=0)`` gives, with standard errors. Free of the
  scene's structure.
- ``w2s`` (30 images) and ``pairs`` (5): one noisy image against its frame average: the
  residual ``y - (a * reference + b)`` (least-squares affine fit: the files were stretched one
  by one), its variance and third cumulant per level of the fitted signal (pixels away from 0
  and 255), weighted lines against the level, the ratio of their slopes. Controls: noise drawn
  by ``poisson-gaussian`` and by ``emccd`` (shape 1) at each image's fitted gain on its
  fitted signal, measured the same way (true ratios 1 and 1.5), so the estimator's own bias
  on these scenes shows.

Usage:
    python benchmarks/skew.py                     # all three (about 2 min)
    python benchmarks/skew.py --datasets w2s
    python benchmarks/skew.py --tiny              # smoke test
Writes benchmarks/results/skew.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from _common import ROOT, finish, fmd_frames, header, save  # noqa: E402

DATASETS = ("fmd", "w2s", "pairs")
#: level sets of the reference-based measurement
N_LEVELS = 30


def _line_slope(x, y, se) -> tuple[float, float]:
    """Weighted least-squares slope of y against x and its standard error."""
    X = np.stack([x, np.ones_like(x)], 1)
    w = 1.0 / np.square(se)
    A = X.T @ (X * w[:, None])
    coef = np.linalg.solve(A, X.T @ (w * y))
    chi2 = max(1.0, float(np.sum(((y - X @ coef) / se) ** 2)) / max(len(x) - 2, 1))
    return float(coef[0]), float(np.sqrt(np.linalg.inv(A)[0, 0] * chi2))


def reference_ratio(y, ref, clip=(0.0, 255.0)) -> dict:
    """The third-cumulant ratio of ``y``'s noise against its clean ``ref``: residuals of the
    affine fit, variance and third cumulant per level of the fitted signal (pixels strictly
    inside ``clip``), the ratio of the lines' slopes. Returns ratio, its standard error (delta
    method), the variance's slope (the gain) and the fit (a, b)."""
    y = np.asarray(y, np.float64)
    ref = np.asarray(ref, np.float64)
    a, b = np.linalg.lstsq(np.stack([ref.ravel(), np.ones(ref.size)], 1), y.ravel(),
                           rcond=None)[0]
    s = a * ref + b
    r = (y - s)[(y > clip[0]) & (y < clip[1])]
    s = s[(y > clip[0]) & (y < clip[1])]
    edges = np.quantile(s, np.linspace(0.01, 0.99, N_LEVELS + 1))
    idx = np.digitize(s, edges) - 1
    lv, m2, m3, e2, e3 = [], [], [], [], []
    for k in range(N_LEVELS):
        rr = r[idx == k]
        if rr.size < 200:
            continue
        c = rr - rr.mean()
        lv.append(s[idx == k].mean())
        m2.append(np.mean(c ** 2))
        m3.append(np.mean(c ** 3))
        e2.append(np.std(c ** 2) / np.sqrt(rr.size))
        e3.append(np.std(c ** 3) / np.sqrt(rr.size))
    lv, m2, m3, e2, e3 = map(np.asarray, (lv, m2, m3, e2, e3))
    g, se_g = _line_slope(lv, m2, e2)
    k3, se_k3 = _line_slope(lv, m3, e3)
    ratio = k3 / g ** 2
    se = float(np.hypot(se_k3 / g ** 2, 2 * ratio * se_g / g))
    return {"ratio": float(ratio), "stderr": se, "gain": g, "fit": [float(a), float(b)]}


def controls(y, ref, fit: dict, rng) -> dict:
    """The same measurement on noise of known skew drawn on the image's fitted signal at its
    fitted gain: ``poisson-gaussian`` (ratio 1) and ``emccd`` shape 1 (1.5), clipped to 8
    bits like the data."""
    a, b = fit["fit"]
    x = np.clip(a * np.asarray(ref, np.float64) + b, 0, None)
    g = fit["gain"]
    out = {}
    for key, nm in (("poisson-gaussian", sd.noise.PoissonGaussian(gain=g, read_noise=0.5)),
                    ("emccd-1", sd.noise.Emccd(gain=g / 2, shape=1.0, read_noise=0.5))):
        ys = np.clip(np.round(nm.sample(x, rng=rng)), 0, 255)
        out[key] = reference_ratio(ys, ref)["ratio"]
    return out


def photon_transfer_rows(fields, n_frames, crop) -> list:
    rows = []
    for f in fields:
        frames = fmd_frames(f, range(n_frames))[..., :crop, :crop]
        ratio, se = sd.photon_transfer(frames).third_cumulant_ratio()
        est = sd.estimate_noise(frames, "emccd", frames_axis=0)
        rows.append({"image": f"field {f}", "ratio": ratio, "stderr": se,
                     "shape": est.noise_model.shape, "shape_stderr": est.stderr.get("shape"),
                     "gain": est.noise_model.gain})
        print(f"  field {f}: ratio {ratio:.3f} +/- {se:.3f}, shape "
              f"{est.noise_model.shape:.2f}", flush=True)
    return rows


def reference_rows(name, crop, rng) -> list:
    from convergence import load

    _, test = load(name, crop)
    rows = []
    for img, y, ref in test:
        m = reference_ratio(y, ref)
        rows.append({"image": img, **m, "controls": controls(y, ref, m, rng)})
        print(f"  {img}: ratio {m['ratio']:.3f} +/- {m['stderr']:.3f}; controls "
              + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1]["controls"].items()), flush=True)
    return rows


def _summary(rows) -> dict:
    v = np.array([r["ratio"] for r in rows])
    out = {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
           "shape_of_median": sd.noise.Emccd.shape_for_skew(float(np.median(v)))}
    if rows and "controls" in rows[0]:
        for k in rows[0]["controls"]:
            c = np.array([r["controls"][k] for r in rows])
            out[f"control {k}"] = {"median": float(np.median(c)), "min": float(c.min()),
                                   "max": float(c.max())}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated, of {DATASETS}")
    p.add_argument("--seed", type=int, default=0, help="seed of the controls' noise")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "skew.json")
    cfg = p.parse_args(argv)
    cfg.datasets = [d.strip() for d in cfg.datasets.split(",") if d.strip()]
    bad = [d for d in cfg.datasets if d not in DATASETS]
    if bad:
        p.error(f"unknown datasets {bad}; choose from {DATASETS}")
    crop, n_frames, fields = (128, 10, (4,)) if cfg.tiny else (None, 50, (1, 2, 3, 4))
    rng = np.random.default_rng(cfg.seed)
    out = {**header(cfg), "datasets": {}}
    t0 = time.perf_counter()
    for name in cfg.datasets:
        print(f"{name}:", flush=True)
        rows = (photon_transfer_rows(fields, n_frames, crop) if name == "fmd"
                else reference_rows(name, crop, rng))
        out["datasets"][name] = {"images": rows, **_summary(rows)}
        save(out, cfg.out)
    print("\n| data | measured | ratio: median (range) | shape of the median | controls: "
          "poisson-gaussian (1) / emccd shape 1 (1.5), median (range) |")
    print("|---|---|---|---|---|")
    for name, d in out["datasets"].items():
        how = "photon transfer" if name == "fmd" else "against the reference"
        ctl = " / ".join(f"{c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f})"
                         for k, c in d.items() if k.startswith("control "))
        print(f"| {name} | {how} | {d['median']:.3f} ({d['min']:.3f}-{d['max']:.3f}) | "
              f"{d['shape_of_median']:.2f} | {ctl or '-'} |")
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
