"""Calibration of the posterior standard deviation map where the posterior is known exactly
(issue 24): the oracle benchmark's local prior (each pixel is one of the 7x7 clean pixels
around it, equally likely; benchmarks/oracle.py) gives the exact score s(y), its derivative
ds/dy (central differences of the exact score), and the exact posterior mean and variance, per
pixel. The map the library states, ``noise_model.posterior_variance(y, s, ds/dy)`` (Tweedie's
second-order formula; for ``poisson-gaussian`` in the local Gaussian approximation), is
compared with the truth:

- ``rms z``: the rms of (x - x_hat) / stated std, x the clean pixel and x_hat the noise
  model's solve with the exact score (1 when calibrated; target 0.85-1.2);
- ``cover``: the share of pixels with |x - x_hat| < 1.96 stated std (target 93-97 %);
- ``std ratio``: the median of stated / exact posterior std.

The stated std is floored as ``posterior_std`` floors it for a sigma-conditioned network
(``STD_FLOOR`` of the noise's std; an exact score has no unconditioned network's irregularity).

Cases: Gaussian noise (sigma = 25) on Set12, and the FMD camera (``poisson-gaussian``, gain
3.8 ADU per photo-electron, offset 3.5, read noise 1.0: FMD confocal's estimate) on the FMD
50-frame averages (real fluorescence images, about 0.1 to 60 photo-electrons a pixel), and on
the same averages scaled down 4x (a quarter of the photons). The camera is taken as the
library uses it: its read noise raised by the training's photon smoothing to half a photon
step (``extra_noise="auto"``: the network learns the score of the data smoothed so, and the
solve and the map use the camera plus that smoothing) and by sigma_a as Stein's estimate
picks it on FMD field 4 (0.045 of the data's scale of 255: 11.5 ADU; docs/benchmarks.md): the
map is then that of an observation with this much more Gaussian noise, which is what the
solve and the map remove. For comparison, the same without sigma_a, and the raw camera, whose
comb of photon counts (3.8 ADU apart, read noise 1) the library never evaluates the map on.

Usage:
    python benchmarks/calibration.py              # about 2 minutes on 2 CPU cores
    python benchmarks/calibration.py --tiny       # smoke test
Writes benchmarks/results/calibration.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage.io import imread

import scoredenoise as sd
from scoredenoise.training import PHOTON_SMOOTHING
from scoredenoise.uncertainty import STD_FLOOR, noise_variance_at_result

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from _common import DATA, ROOT, finish, header, need
from oracle import local_support, oracle


def exact_posterior(nm, y, values, probs, chunk=16384):
    """The exact posterior variance of a per-pixel discrete prior (values, probs)."""
    import torch

    out = np.empty(y.size)
    for lo in range(0, y.size, chunk):
        hi = min(y.size, lo + chunk)
        yy = torch.from_numpy(y[lo:hi, None]).double()
        v = torch.from_numpy(values[lo:hi]).double()
        p = torch.from_numpy(probs[lo:hi]).double()
        vv, yb = torch.broadcast_tensors(v, yy)
        w = torch.softmax(nm.log_prob(vv, yb) + torch.log(p), dim=1)
        m = (w * vv).sum(1)
        out[lo:hi] = ((w * vv ** 2).sum(1) - m ** 2).clamp_min(0).numpy()
    return out


def run_case(nm, cleans, rng, offset=0.0):
    rows = []
    for clean in cleans:
        x = clean.astype(np.float64)  # the signal (above the camera offset)
        y = np.asarray(nm.sample(x, rng), np.float64).ravel()
        vals, probs = local_support(x)
        s, mean = oracle(nm, y, vals, probs)
        h = 1e-3 * max(float(np.sqrt(np.mean(nm.noise_level(x + offset)))), 1.0)
        sp, _ = oracle(nm, y + h, vals, probs)
        sm, _ = oracle(nm, y - h, vals, probs)
        d = (sp - sm) / (2 * h)
        # as posterior_std states it: floored at STD_FLOOR of the noise's std
        stated = np.sqrt(np.maximum(nm.posterior_variance(y, s, d),
                                    STD_FLOOR ** 2 * noise_variance_at_result(nm, y, s)))
        xhat = np.asarray(nm.solve(y, s), np.float64)
        true_sd = np.sqrt(exact_posterior(nm, y, vals, probs))
        err = x.ravel() - xhat
        z = err / np.maximum(stated, 1e-12)
        ok = true_sd > 0
        rows.append({"rms_z": float(np.sqrt(np.mean(z ** 2))),
                     "coverage_95": float(np.mean(np.abs(err) < 1.96 * stated)),
                     "std_ratio": float(np.median(stated[ok] / true_sd[ok])),
                     "rms_z_exact_std": float(np.sqrt(np.mean(
                         (x.ravel() - mean)[ok] ** 2 / true_sd[ok] ** 2))),
                     "zero_std": float(np.mean(stated == 0))})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"images": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=4, help="images of each set")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "calibration.json")
    cfg = p.parse_args(argv)
    t0 = time.perf_counter()
    n = 1 if cfg.tiny else cfg.images
    crop = (slice(0, 48), slice(0, 48)) if cfg.tiny else (slice(None), slice(None))
    set12 = [imread(f).astype(np.float64)[crop] for f in
             sorted((need(DATA / "natural") / "Set12").glob("*.png"))[:n]]
    fmd = need(DATA / "fmd_confocal_bpae_b")
    cam = sd.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5, read_noise=1.0)
    smooth = float(np.sqrt((PHOTON_SMOOTHING * cam.gain) ** 2 - cam.read_noise ** 2))
    trained = cam.plus_gaussian(smooth)  # the training's smoothing only
    used = cam.plus_gaussian(float(np.hypot(smooth, 0.045 * 255)))  # as the library evaluates
    # the averages' signal above the camera offset (their darkest level is about the offset)
    avgs = [np.maximum(imread(fmd / "gt" / str(f) / "avg50.png").astype(np.float64)[crop]
                       - 3.5, 0.0) for f in range(1, n + 1)]
    cases = [("Set12, gaussian sigma=25", sd.get_noise_model("gaussian", sigma=25.0), set12,
              0.0),
             ("FMD averages, camera gain 3.8 as evaluated (+ smoothing, sigma_a)", used, avgs,
              3.5),
             ("FMD averages / 4, camera as evaluated", used, [a / 4 for a in avgs], 3.5),
             ("FMD averages, camera + training smoothing, no sigma_a", trained, avgs, 3.5),
             ("FMD averages, raw camera (comb of counts)", cam, avgs, 3.5)]
    out = {**header(cfg), "cases": {}}
    print("| case | rms z (target 0.85-1.2) | within 1.96 std (93-97 %) | stated / exact std "
          "(median) | rms z with the exact std | stated std 0 |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for label, nm, imgs, off in cases:
        r = run_case(nm, imgs, rng, off)
        out["cases"][label] = r
        print(f"| {label} | {r['rms_z']:.3f} | {100 * r['coverage_95']:.1f} % | "
              f"{r['std_ratio']:.3f} | {r['rms_z_exact_std']:.3f} | "
              f"{100 * r['zero_std']:.2f} % |", flush=True)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
