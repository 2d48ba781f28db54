"""How exact the posterior standard deviation is for each noise model (issue 24), where the
posterior is known exactly.

Pixels are drawn from a known prior (two Gaussian bumps, at 0.6 and 1.4 x ``scale``, of
widths 0.1 and 0.2 x ``scale``), and each model's own likelihood gives, by quadrature over
a fine grid of x, the exact score of p(y), its derivative and the exact posterior mean and
variance of every pixel. The std the library states, ``noise_model.posterior_variance(y, s,
ds/dy)`` (Tweedie's second-order formula: exact for Gaussian noise; the exponential family
for gamma; the local Gaussian approximation for the others), is compared with the exact
posterior std (floored as ``posterior_std`` floors it, at ``STD_FLOOR`` of the noise's std):

- ``median``, ``p10``-``p90``: stated / exact std over the pixels (1 when exact);
- ``rms z``: the rms of (x - x_hat) / stated std, x the clean pixel and x_hat the model's
  solve with the exact score (1 when the stated std is the solve's error);
- ``cover``: the share of pixels with |x - x_hat| < 1.96 stated std.

Models with a correlation kernel are not in the table: their posterior variance needs the
Jacobian's off-diagonal terms (``posterior_variance`` refuses them).

Usage:
    python benchmarks/posterior_models.py            # about 1 minute on 2 CPU cores
    python benchmarks/posterior_models.py --tiny     # smoke test
Writes benchmarks/results/posterior_models.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import scoredenoise as sd
from scoredenoise.uncertainty import STD_FLOOR, noise_variance_at_result

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from _common import ROOT, finish, header

#: (model, parameters, scale of the prior): the defaults, and regimes either side
CASES = [
    ("gaussian", {"sigma": 15.0}, 100.0),
    ("gamma", {"alpha": 4.0}, 100.0),
    ("gamma", {"alpha": 26.0}, 100.0),
    ("gamma", {"alpha": 100.0}, 100.0),
    ("poisson", {"lam": 1.0}, 20.0),
    ("poisson", {"lam": 1.0}, 100.0),
    ("poisson", {"lam": 1.0}, 1000.0),
    ("rayleigh", {"sigma": 0.1}, 100.0),
    ("rayleigh", {"sigma": 0.3}, 100.0),
    ("rayleigh", {"sigma": 1.0}, 100.0),
    ("gaussian-signal", {}, 100.0),
    ("poisson-gaussian", {"gain": 4.0, "offset": 0.0, "read_noise": 2.0}, 40.0),
    ("poisson-gaussian", {"gain": 4.0, "offset": 0.0, "read_noise": 2.0}, 400.0),
    ("poisson-gaussian", {"gain": 4.0, "offset": 0.0, "read_noise": 8.0}, 40.0),
    ("gamma+gaussian", {"alpha": 26.0, "sigma": 5.0}, 100.0),
    ("rayleigh+gaussian", {"sigma": 0.3}, 100.0),
]

#: a mixture's likelihood is itself an integral over the Gaussian part (a camera's, a sum
#: over photon counts): these cases use this share of the pixels and of the quadrature nodes
MIXTURE_SHARE = 0.2


def exact(nm, y, xs, w, chunk=256):
    """Score of p(y) and its derivative (differences of log p(y) itself, so a mixture's
    approximate likelihood score plays no part), posterior mean and variance of x, by
    quadrature."""
    x_t = torch.tensor(xs[None, :], dtype=torch.float64)

    def at(yv):
        out = [], [], []
        for lo in range(0, len(yv), chunk):
            y_t = torch.tensor(yv[lo:lo + chunk, None], dtype=torch.float64).expand(-1, len(xs))
            lw = nm._log_prob(x_t.expand_as(y_t), y_t).numpy() + np.log(w)[None]
            top = lw.max(1, keepdims=True)
            p = np.exp(lw - top)
            z = p.sum(1, keepdims=True)
            p /= z
            mean = (p * xs).sum(1)
            out[0].append((top + np.log(z))[:, 0])
            out[1].append(mean)
            out[2].append((p * (xs - mean[:, None]) ** 2).sum(1))
        return [np.concatenate(o) for o in out]

    logp, mean, var = at(y)
    h = 1e-2 * np.maximum(np.abs(y), 1.0)
    up, down = at(y + h)[0], at(y - h)[0]
    return (up - down) / (2 * h), (up - 2 * logp + down) / h ** 2, mean, var


def one(name, params, scale, n, grid, seed=0):
    nm = sd.get_noise_model(name, **params)
    xs = np.linspace(0.005, 3, grid) * scale
    w = np.exp(-0.5 * ((xs - 0.6 * scale) / (0.1 * scale)) ** 2) + \
        np.exp(-0.5 * ((xs - 1.4 * scale) / (0.2 * scale)) ** 2)
    w /= w.sum()
    rng = np.random.default_rng(seed)
    x = rng.choice(xs, n, p=w)
    y = np.asarray(nm.sample(x, rng=rng), np.float64)
    t0 = time.perf_counter()
    s, ds, _, var = exact(nm, y, xs, w)
    ok = np.isfinite(s) & np.isfinite(ds) & (var > 0)
    y, x, s, ds, var = y[ok], x[ok], s[ok], ds[ok], var[ok]
    y32 = y.astype(np.float32)
    # floored as posterior_std floors it (STD_FLOOR of the noise's std at the result)
    stated = np.sqrt(np.maximum(nm.posterior_variance(y32, s, ds), STD_FLOOR ** 2 *
                                noise_variance_at_result(nm, y32, s.astype(np.float32))))
    ratio = stated / np.sqrt(var)
    x_hat = np.asarray(nm.solve(y.astype(np.float32), s.astype(np.float32)), np.float64) + \
        float(getattr(nm, "offset_value", 0.0))
    z = (x - x_hat) / np.maximum(stated, 1e-12)
    return {"model": name, "params": params, "scale": scale, "pixels": int(ok.sum()),
            "median": float(np.median(ratio)), "p10": float(np.percentile(ratio, 10)),
            "p90": float(np.percentile(ratio, 90)), "rms_z": float(np.sqrt(np.mean(z ** 2))),
            "cover": float(np.mean(np.abs(z) < 1.96)),
            "seconds": time.perf_counter() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pixels", type=int, default=2000)
    p.add_argument("--grid", type=int, default=2000, help="quadrature nodes over x")
    p.add_argument("--models", default=None,
                   help="comma-separated model names: only their cases (default all)")
    p.add_argument("--tiny", action="store_true", help="smoke test: 2 cases, few pixels")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                   "posterior_models.json")
    cfg = p.parse_args(argv)
    cases = CASES[:2] if cfg.tiny else CASES
    if cfg.models:
        keep = set(cfg.models.split(","))
        cases = [c for c in cases if c[0] in keep]
    n, grid = (50, 200) if cfg.tiny else (cfg.pixels, cfg.grid)
    t0 = time.perf_counter()
    print("| model | parameters | prior scale | stated / exact std: median | p10-p90 | "
          "rms z | within 1.96 |")
    print("|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for name, params, scale in cases:
        k = MIXTURE_SHARE if "+" in name or name == "poisson-gaussian" else 1.0
        r = one(name, params, scale, max(int(n * k), 20), max(int(grid * k), 100))
        rows.append(r)
        par = ", ".join(f"{k} {v:g}" for k, v in r["params"].items()) or "defaults"
        print(f"| {r['model']} | {par} | {r['scale']:g} | {r['median']:.3f} | "
              f"{r['p10']:.2f}-{r['p90']:.2f} | {r['rms_z']:.2f} | {100 * r['cover']:.1f} % |",
              flush=True)
    return finish({**header(cfg), "rows": rows}, cfg.out, t0)


if __name__ == "__main__":
    main()
