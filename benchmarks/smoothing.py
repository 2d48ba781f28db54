"""How much of the training's smoothing to remove at solve time, on FMD-like data.

The solve adds the Gaussian the learned score is taken to include to the noise model
(``ScoreModel.smoothing_sigma``: the extra training noise and the final AR-DAE perturbation
sigma_a, times the channel's normalisation scale; Algorithm 5). This script denoises with the
sigma_a part scaled by 0, 0.5 and 1 (and the extra noise removed or not) and reports PSNR:

1. synthetic: FMD field 4's 50-frame average (offset 3.5 removed) through a known
   Poisson-Gaussian camera (gain 3.8, offset 3.5, read noise 1; FMD's own), 3 noise draws;
   a network trained on 4 draws of fields 1-3 the same way. The noise model is exact.
2. real: FMD field 4, 4 raw frames against the 50-frame average, with the photon-transfer
   parameters; a network trained on 4 raw frames of fields 1-3 (benchmarks/noise.py part 3).

The networks are the paper's (``conditioned=False``: sigma_a annealed, evaluated at its final
value); a sigma-conditioned network (the default) is evaluated where Stein's unbiased risk
estimate is lowest instead (docs/training.md).

Usage:
    python benchmarks/smoothing.py            # both (about 6 min on 2 cores)
    python benchmarks/smoothing.py --tiny     # smoke test
Writes benchmarks/results/smoothing.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from _common import ROOT, finish, header
from noise import fmd_field, psnr

FACTORS = (0.0, 0.5, 1.0)


def _sweep(model, cases, noise_model):
    """Mean PSNR for each sigma_a factor, with the extra training noise removed or not."""
    sa0, ex0 = model.sigma_a_final, model.extra_noise
    scores = [(y, model.score(y), x) for y, x in cases]
    rows = []
    for k in FACTORS:
        for ex in sorted({0.0, ex0}):
            model.meta["sigma_a_final"], model.extra_noise = sa0 * k, ex
            v = [psnr(sd.denoise(y, model, noise_model, score=s),
                      x) for y, s, x in scores]
            rows.append({"sigma_a_factor": k, "extra_noise": ex,
                         "smoothing": model.smoothing_sigma(0), "psnr": float(np.mean(v))})
    model.meta["sigma_a_final"], model.extra_noise = sa0, ex0
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--preset", default="default")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                   "smoothing.json")
    cfg = p.parse_args(argv)
    if cfg.tiny:
        cfg.steps, cfg.preset = 3, "small"
    crop = 128 if cfg.tiny else None
    out = header(cfg)
    t0 = time.perf_counter()
    fields = {f: fmd_field(f, crop) for f in (1, 2, 3, 4)}

    def train(stacks):
        return sd.train(stacks, axes="SYX", preset=cfg.preset, steps=cfg.steps, batch_size=8,
                        patch_size=64, seed=0, device=cfg.device, conditioned=False)

    cam = sd.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5, read_noise=1.0)
    rng = np.random.default_rng(0)
    clean = {f: np.maximum(fields[f][1] - 3.5, 0) for f in fields}
    model = train([np.stack([cam.sample(clean[f], rng) for _ in range(4)]).astype(np.float32)
                   for f in (1, 2, 3)])
    synth = [(cam.sample(clean[4], rng).astype(np.float32), clean[4] + 3.5)
             for _ in range(3)]
    out["synthetic"] = {"scale": float(model.scale[0]), "rows": _sweep(model, synth, cam)}

    model = train([fields[f][0][:4].astype(np.float32) for f in (1, 2, 3)])
    stack, gt = fields[4]
    pt = sd.estimate_noise(stack, frames_axis=0).noise_model
    real = [(stack[i].astype(np.float32), gt) for i in range(4)]
    out["real"] = {"scale": float(model.scale[0]), "photon_transfer": pt.to_dict(),
                   "rows": _sweep(model, real, pt)}

    print("\n| data | sigma_a removed | extra noise removed | smoothing (ADU) | PSNR (dB) |")
    print("|---|---|---|---|---|")
    for name in ("synthetic", "real"):
        for r in out[name]["rows"]:
            print(f"| {name} | x{r['sigma_a_factor']:g} | {r['extra_noise']:g} | "
                  f"{r['smoothing']:.2f} | {r['psnr']:.2f} |")
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
