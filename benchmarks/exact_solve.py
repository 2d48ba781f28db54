"""Cost of the exact Poisson + Gaussian solve on a 512x512 plane: the tabulated solve (the
default wherever the read noise is below 3 photon steps) against Algorithm 5 (first order)
and the per-pixel Newton reference, side by side in one run, with their difference.

A real FMD confocal frame (uint8, field 4) and its estimated ``poisson-gaussian`` parameters;
the score is the exact likelihood score at the 50-frame average (the network's score costs
the same to solve; the solve is what the plugin's live re-solve repeats). Also float data
(the same frame plus uniform dither: no value repeats; the table is over eta = log rate +
step y / sigma^2 and serves any value alike) and ``emccd``.

Usage:
    python benchmarks/exact_solve.py            # about a minute
    python benchmarks/exact_solve.py --tiny     # smoke test
Writes benchmarks/results/exact_solve.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, finish, header, need


def _time(fn, repeats):
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "exact_solve.json")
    cfg = p.parse_args(argv)
    from skimage.io import imread

    root = need(DATA / "fmd_confocal_bpae_b")
    y8 = imread(sorted((root / "raw" / "4").glob("*.png"))[0]).astype(np.float64)
    gt = imread(root / "gt" / "4" / "avg50.png").astype(np.float64)
    if cfg.tiny:
        y8, gt, cfg.repeats = y8[:64, :64], gt[:64, :64], 1
    nm = sd.estimate_noise(y8).noise_model
    yf = y8 + np.random.default_rng(0).uniform(-0.5, 0.5, y8.shape)
    out = {**header(cfg), "noise_model": nm.to_dict(), "shape": list(y8.shape), "rows": []}
    t0 = time.perf_counter()
    cases = [("uint8 frame", y8, nm), ("float frame", yf, nm)]
    emccd = sd.estimate_noise(y8, "emccd").noise_model
    cases.append(("uint8 frame, emccd", y8, emccd))
    print(f"poisson-gaussian {nm.to_dict()}; emccd {emccd.to_dict()}; plane {y8.shape}")
    print("| data | solve | first call (ms) | cached (ms) | max diff to reference "
          "(fraction of range) |")
    print("|---|---|---|---|---|")
    for label, y, model in cases:
        x = np.clip(gt - model.offset_value, 0, None)
        yt = torch.from_numpy(y)
        st = torch.from_numpy(np.asarray(model.score(x, y)))
        span = float(y.max() - y.min())
        if model.name == "emccd":
            solvers = {"tabulated (exact)": lambda m=model, yt=yt, st=st: m._solve(yt, st)}
            ref = None
        else:
            exact, first_order = model.replace(exact=True), model.replace(exact=False)
            solvers = {"tabulated (exact, default)":
                       lambda m=exact, yt=yt, st=st: m._solve(yt, st),
                       "Algorithm 5 (first order)":
                       lambda m=first_order, yt=yt, st=st: m._solve(yt, st),
                       "Newton per pixel (reference)":
                       lambda m=exact, yt=yt, st=st: m._solve_exact_newton(yt, st)}
            if model.gaussian_sigma == 0:  # no read noise: the Poisson rule, nothing to compare
                solvers.pop("Newton per pixel (reference)")
            ref = None
        results = {}
        for name, fn in solvers.items():
            from scoredenoise.noise import _count_table

            _count_table._cache.clear()
            if model.name == "emccd":
                from scoredenoise.noise import emccd as _emccd

                _emccd._cache.clear()
            t1 = time.perf_counter()
            first = fn()
            cold = time.perf_counter() - t1
            warm, res = _time(fn, 0 if "reference" in name else cfg.repeats)
            warm = cold if "reference" in name else warm
            results[name] = np.asarray(first)
            out["rows"].append({"data": label, "solve": name, "first_ms": 1e3 * cold,
                                "cached_ms": 1e3 * warm})
        if "Newton per pixel (reference)" in results:
            ref = results["Newton per pixel (reference)"]
        for row in out["rows"]:
            if row["data"] != label:
                continue
            d = (float(np.abs(results[row["solve"]] - ref).max() / span) if ref is not None
                 else None)
            row["max_diff_fraction"] = d
            print(f"| {label} | {row['solve']} | {row['first_ms']:.0f} | "
                  f"{row['cached_ms']:.0f} | " + ("-" if d is None else f"{d:.2e}") + " |",
                  flush=True)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
