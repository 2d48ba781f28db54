"""Training recipe of the score model on real data: the AR-DAE perturbation's schedule and the
training smoothing, each variant through the public API, side by side in one run.

For each variant a score model is trained (default preset, seed 0, the same patches) and
denoised with the ``poisson-gaussian`` model ``estimate_noise`` measures on each test image;
PSNR against the reference. Variants (``train`` keywords):

- ``default``: the library's defaults (a sigma-conditioned network trained over sigma_a in
  0.01-0.5, narrowed after 30 % of the steps around the values Stein's unbiased risk
  estimate picks on the training images, evaluated at the sigma_a it picks per test image;
  smoothing to half a photon step);
- ``range 0.01-0.1``: conditioned, over a fixed narrower range;
- ``unconditioned``: the paper's network, sigma_a annealed 0.05 -> 0.02 (the previous
  default); ``anneal 1e-3``: annealed towards 0, as the paper does; ``held 0.05`` and
  ``held 0.1``: held at one level throughout;
- ``lattice smoothing``: ``extra_noise`` = the lattice step (1 ADU) instead of half a photon
  step;
- ``sigma_a kept``: the unconditioned model solved without removing sigma_a (the lead of
  docs/benchmarks.md, "the solve removes more smoothing than the network learned"); run
  with ``unconditioned``.

Datasets: ``fmd`` (confocal fields 1-3 -> field 4, 4 frames each; 2 test frames) and ``pairs``
(the five FMD pairs, trained on the five noisy frames).

Usage:
    python benchmarks/recipe.py                  # both (about 50 min on 2 CPU cores)
    python benchmarks/recipe.py --datasets fmd --steps 500
    python benchmarks/recipe.py --tiny           # smoke test
Writes benchmarks/results/recipe.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, finish, header, save
from convergence import load, psnr

VARIANTS = {
    "default": {},
    "range 0.01-0.1": {"sigma_a": (0.01, 0.1)},
    "unconditioned": {"conditioned": False},
    "anneal 1e-3": {"conditioned": False, "sigma_a": (0.05, 1e-3)},
    "held 0.05": {"conditioned": False, "sigma_a": (0.05, 0.05)},
    "held 0.1": {"conditioned": False, "sigma_a": (0.1, 0.1)},
    "lattice smoothing": {"extra_noise": 1.0},
}


def evaluate(model, test, noise, keep_sigma_a=False):
    if keep_sigma_a:  # solve as if the network had learned the unsmoothed score
        saved = model.meta["sigma_a_final"]
        model.meta["sigma_a_final"] = 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sd.ImplausibleSolutionWarning)
            vals = [psnr(sd.denoise(y, model, noise[name]), ref) for name, y, ref in test]
    finally:
        if keep_sigma_a:
            model.meta["sigma_a_final"] = saved
    return vals


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="fmd,pairs")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=None, help="default: the library's")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recipe.json")
    cfg = p.parse_args(argv)
    cfg.datasets = [d for d in cfg.datasets.split(",") if d]
    cfg.variants = [v for v in cfg.variants.split(",") if v]
    bad = [v for v in cfg.variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variants {bad}; choose from {list(VARIANTS)}")
    # the recipes of the sigma_a study, in the data's units (its smoothing is one number)
    kw = {"device": cfg.device, "seed": 0, "units": "data"}
    if cfg.steps:
        kw["steps"] = cfg.steps
    crop = None
    if cfg.tiny:
        crop, kw["steps"], kw["preset"] = 128, 4, "small"
    out = {**header(cfg), "datasets": {}}
    t0 = time.perf_counter()
    for name in cfg.datasets:
        train, test = load(name, crop)
        if name == "fmd":
            test = test[:2]
        noise = {n: sd.estimate_noise(y).noise_model for n, y, _ in test}
        rows = out["datasets"][name] = {"noisy": [psnr(y, ref) for _, y, ref in test]}
        for v in cfg.variants:
            t1 = time.perf_counter()
            model = sd.train(train, **kw, **VARIANTS[v])
            seconds = time.perf_counter() - t1
            rows[v] = {"psnr": evaluate(model, test, noise), "seconds": seconds,
                       "smoothing": model.smoothing_sigma(), "extra_noise": model.extra_noise}
            if v == "unconditioned":
                rows["sigma_a kept"] = {"psnr": evaluate(model, test, noise, keep_sigma_a=True),
                                        "seconds": seconds, "extra_noise": model.extra_noise,
                                        "smoothing": model.extra_noise}
            print(f"{name}, {v}: {np.mean(rows[v]['psnr']):.2f} dB ({seconds:.0f} s)",
                  flush=True)
            save(out, cfg.out)
    for name, rows in out["datasets"].items():
        names = [n for n, _, _ in load(name, crop)[1]][:len(rows["noisy"])]
        print(f"\n{name}: PSNR (dB)\n| variant | smoothing (ADU) | " + " | ".join(names)
              + " | mean |")
        print("|---|---|" + "---|" * (len(names) + 1))
        for v, r in rows.items():
            vals = r if v == "noisy" else r["psnr"]
            sm = "-" if v == "noisy" else f"{r['smoothing']:.2f}"
            print(f"| {v} | {sm} | " + " | ".join(f"{x:.2f}" for x in vals)
                  + f" | {np.mean(vals):.2f} |")
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
