"""Oracle benchmark: how good is the paper's solve rule when the score is exact?

Our method replaces the posterior mean E[x|y] by the root x of s(y) = grad_y log p(y|x), where
s(y) = grad_y log p(y) is the score of the noisy data. For Gaussian noise the two are the same
(Tweedie's formula); for every other model the rule is an approximation, and its error grows
with the width of the posterior p(x|y). This script separates that error from the error of
training: for priors whose marginal score is known exactly it compares, on Set12 (0-255),

* ``rule``: the noise model's ``solve(y, s_exact)``, the paper's estimator with a perfect network
  (Algorithm 5 for the mixtures; their exact solve, ``exact=True``, in a column of its own);
* ``mmse``: the exact posterior mean under the same prior, the best any denoiser can do with it;
* ``noisy``: the input.

Two priors, both built from the clean test image itself (so they are oracles, stronger than any
network for the local one):

* ``local``: x_i is one of the 7x7 clean pixels around i, equally likely (a narrow posterior, like
  a network that sees the context);
* ``global``: x_i is drawn from the image's histogram (a wide posterior, no context).

For each, p(y) = sum_k pi_k p(y|v_k), so s(y) = sum_k w_k(y) grad_y log p(y|v_k) with posterior
weights w_k(y), and E[x|y] = sum_k w_k(y) v_k, in closed form per pixel. Only element-wise models
without A are covered (A couples pixels).

Usage:
    python benchmarks/oracle.py                  # Table 1 rows 1, 3, 5, 7, 9; a-sweep, row 3
    python benchmarks/oracle.py --images 12      # all of Set12 (default: the first 4, ~3 min)
    python benchmarks/oracle.py --tiny           # smoke test
Writes benchmarks/results/oracle.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, finish, header, need

#: (label, noise model name, parameters); Table 1 rows at the paper's parameters, then row 3
#: with smaller slopes a to show where its solve rule stops being a good estimator
CASES = [
    ("row 1", "gaussian", dict(sigma=25.0)),
    ("row 3", "gaussian-signal", dict(a=0.98, b=25.0)),
    ("row 3, a=0.3", "gaussian-signal", dict(a=0.3, b=25.0)),
    ("row 3, a=0.1", "gaussian-signal", dict(a=0.1, b=25.0)),
    ("row 3, a=0.98/255", "gaussian-signal", dict(a=0.98 / 255, b=25.0)),
    ("row 5", "gamma", dict(alpha=26.0)),
    ("row 7", "poisson", dict(lam=0.2)),
    ("row 9", "rayleigh", dict(sigma=0.3)),
    ("row 13", "poisson+gaussian", dict(lam=0.2, sigma=10.0)),
    # read noise below the photon step (1/lam = 5), as on FMD's camera
    ("row 13, sigma=2", "poisson+gaussian", dict(lam=0.2, sigma=2.0)),
]

FLOOR = 0.5  # clean values are floored here: multiplicative models need x > 0


def psnr(x, ref, peak=255.0):
    return float(10 * np.log10(peak ** 2 / np.mean((np.asarray(x, np.float64) - ref) ** 2)))


def local_support(clean, radius=3):
    """(N, (2r+1)^2) candidate values: the clean pixels in each pixel's window (edge-padded)."""
    pad = np.pad(clean, radius, mode="edge")
    h, w = clean.shape
    k = 2 * radius + 1
    vals = [pad[i:i + h, j:j + w].ravel() for i in range(k) for j in range(k)]
    v = np.stack(vals, axis=1)
    return v, np.full(v.shape, 1.0 / v.shape[1])


def global_support(clean):
    """(1, K) histogram of the image: support values and their probabilities."""
    vals, counts = np.unique(clean, return_counts=True)
    return vals[None, :], (counts / counts.sum())[None, :]


def oracle(nm, y, values, probs, chunk=16384):
    """Exact marginal score and posterior mean for a per-pixel discrete prior."""
    n = y.size
    s_out, m_out = np.empty(n), np.empty(n)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        yy = torch.from_numpy(y[lo:hi, None]).double()
        v = torch.from_numpy(values if values.shape[0] == 1 else values[lo:hi]).double()
        p = torch.from_numpy(probs if probs.shape[0] == 1 else probs[lo:hi]).double()
        vv, yb = torch.broadcast_tensors(v, yy)
        logp = nm.log_prob(vv, yb) + torch.log(p)
        w = torch.softmax(logp, dim=1)
        f = nm.score(vv, yb)
        f = torch.where(w > 0, f, torch.zeros_like(f))  # -inf log-prob: weight 0, no nan
        s_out[lo:hi] = (w * f).sum(1).numpy()
        m_out[lo:hi] = (w * v.expand_as(w)).sum(1).numpy()
    return s_out, m_out


def run_case(nm, images, rng):
    exact = getattr(type(nm), "supports_exact", lambda: False)()
    keys = ["noisy", "rule_local", "mmse_local", "rule_global", "mmse_global"]
    keys += ["exact_local", "exact_global"] if exact else []
    res = {k: [] for k in keys}
    for clean in images:
        x = np.maximum(clean, FLOOR)
        y = np.asarray(nm.sample(x, rng), np.float64)
        res["noisy"].append(psnr(y, clean))
        for name, (vals, probs) in (("local", local_support(x)), ("global", global_support(x))):
            s, mmse = oracle(nm, y.ravel(), vals, probs)
            paper = nm.replace(exact=False) if exact else nm  # the paper's Algorithm 5
            rule = np.asarray(paper.solve(y.ravel(), s)).reshape(clean.shape)
            res[f"rule_{name}"].append(psnr(rule, clean))
            if exact:  # the mixture's exact solve (exact=True) instead of Algorithm 5
                xe = np.asarray(nm.replace(exact=True).solve(y.ravel(), s))
                res[f"exact_{name}"].append(psnr(xe.reshape(clean.shape), clean))
            res[f"mmse_{name}"].append(psnr(mmse.reshape(clean.shape), clean))
    return {k: float(np.mean(v)) for k, v in res.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=4, help="first N Set12 images")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "oracle.json")
    cfg = p.parse_args(argv)
    if cfg.tiny:
        cfg.images = 1
    files = sorted(need(DATA / "natural" / "Set12").glob("*.png"))[:cfg.images]
    images = [imread(f).astype(np.float64) for f in files]
    if cfg.tiny:
        images = [im[:48, :48] for im in images]
    out = {**header(cfg), "cases": []}
    t0 = time.perf_counter()
    print("| case | noise model | noisy | rule, local prior | MMSE, local prior | "
          "rule, global prior | MMSE, global prior | exact solve, local / global |")
    print("|---|---|---|---|---|---|---|---|")
    for label, name, params in CASES:
        nm = sd.get_noise_model(name, **params)
        r = {"case": label, "noise": nm.to_dict(),
             **run_case(nm, images, np.random.default_rng(0))}
        out["cases"].append(r)
        ex = (f"{r['exact_local']:.2f} / {r['exact_global']:.2f}" if "exact_local" in r
              else "-")
        print(f"| {label} | {name} | {r['noisy']:.2f} | {r['rule_local']:.2f} | "
              f"{r['mmse_local']:.2f} | {r['rule_global']:.2f} | {r['mmse_global']:.2f} | "
              f"{ex} |", flush=True)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
