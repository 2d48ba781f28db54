"""Units per image for the score model (issue 21): by hand, and the library's ``units="photons"``.

The score network learns all its training images at one normalisation (the pooled
percentiles of their patches). W2S's 30 files were stretched one by one to 8 bits, so one
photo-electron is 3.7 ADU in some and 44 ADU in others: the network sees images of the same
range whose noise differs twelvefold and has to tell from the texture which comb of counts a
patch belongs to. The images that lose most to Neighbor2Neighbor are those of the largest
gain (docs/benchmarks.md, "Units per image").

This script trains the score model's library defaults (``scoredenoise.train(images)``) on the
training images each mapped by ``u = (y - offset) * c`` with its own ``estimate_noise``
(``poisson-gaussian``) parameters, and evaluates every test image the same way: mapped by its
own estimate, its score taken and solved with the estimated model mapped alike (gain * c,
read noise * c, offset 0), the result mapped back. ``--units``:

- ``data``: c = 1 (offset removed only): the library today, up to the offset;
- ``photons``: c = 1 / gain, photo-electrons: every image's comb of counts one unit apart;
- ``sqrt``: c = 1 / sqrt(gain), half-way between the two on a log scale.

- ``library``: ``scoredenoise.train(images, units="photons")`` on the images as they are,
  each test image denoised by the library's own path (``model.score(y)`` maps it by its own
  estimate, ``denoise`` solves in its units): the photons map as the library does it, with
  ``extra_noise="auto"`` in photo-electrons (half a photon in all, read noise included; by
  hand the mapped images are not on one lattice, so the default adds none).

The map is affine, so the score of the data is the mapped image's score times c and the
solve's posterior mean maps back exactly; what changes is what the network is asked to learn.

Usage:
    python benchmarks/units.py --datasets w2s,pairs --units data,photons --seeds 0,1
    python benchmarks/units.py --tiny                      # smoke test
Writes benchmarks/results/units.json and prints a Markdown table (PSNR; W2S: after the affine
fit, as ``convergence.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from _common import ROOT, finish, header, save  # noqa: E402
from convergence import DATASETS, Evaluator, load  # noqa: E402

UNITS = {
    "data": lambda nm: 1.0,
    "photons": lambda nm: 1.0 / nm.gain,
    "sqrt": lambda nm: 1.0 / np.sqrt(nm.gain),
    "library": lambda nm: 1.0,  # the images as they are: the library maps them
}


def mapped(y, nm, units: str):
    """``y`` in ``units`` by its own estimate ``nm``, the estimate mapped alike, and c."""
    c = float(UNITS[units](nm))
    u = ((np.asarray(y, np.float32) - nm.offset) * c).astype(np.float32)
    return u, type(nm)(gain=nm.gain * c, offset=0.0, read_noise=nm.read_noise * c), c


def run(train, estimates, evaluate: Evaluator, units: str, seed: int, steps: int | None,
        preset: str | None, device: str) -> dict:
    """Train on ``train`` mapped to ``units`` by their ``estimates`` and evaluate every test
    image likewise (by its own estimate)."""
    library = units == "library"
    images = list(train) if library else [mapped(y, nm, units)[0]
                                          for y, nm in zip(train, estimates)]
    t0 = time.perf_counter()
    model = sd.train(images, seed=seed, steps=steps, preset=preset, device=device,
                     units="photons" if library else "data")
    seconds = time.perf_counter() - t0
    rows = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sd.ImplausibleSolutionWarning)
        for name, y, ref in evaluate.test:
            nm = evaluate.noise_model(name, y)
            if library:  # the library's own path: the image mapped by its own estimate
                s = model.score(y, noise_model=nm, device=device)
                x = np.asarray(sd.denoise(y, model, nm, score=s), np.float64)
            else:
                u, nm_u, c = mapped(y, nm, units)
                s = model.score(u, noise_model=nm_u, device=device)
                x = np.asarray(sd.denoise(u, model, nm_u, score=s), np.float64) / c + nm.offset
            rows.append({"image": name, "sigma_a": float(s.sigma_a),
                         "score_factor": float(getattr(s.sigma_a, "factor", 1.0)),
                         **evaluate._metrics(x, ref)})
    implausible = sum(issubclass(w.category, sd.ImplausibleSolutionWarning) for w in caught)
    key = "psnr_fit" if evaluate.fit else "psnr"
    return {"seed": seed, "seconds": seconds, "steps": model.meta["training"]["steps"],
            "preset": model.meta["training"]["preset"], "psnr": float(np.mean(
                [r[key] for r in rows])), "implausible_warnings": implausible, "images": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="w2s,pairs")
    p.add_argument("--units", default="data,photons")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                   default=[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "units.json")
    cfg = p.parse_args(argv)
    cfg.datasets = [d.strip() for d in cfg.datasets.split(",") if d.strip()]
    cfg.units = [u.strip() for u in cfg.units.split(",") if u.strip()]
    bad = [d for d in cfg.datasets if d not in DATASETS] + \
        [u for u in cfg.units if u not in UNITS]
    if bad:
        p.error(f"unknown datasets or units {bad}; datasets: {DATASETS}, units: "
                f"{tuple(UNITS)}")
    crop, steps, preset = (128, 4, "small") if cfg.tiny else (None, None, None)
    out = {**header(cfg), "datasets": {}}
    t0 = time.perf_counter()
    for name in cfg.datasets:
        train, test = load(name, crop)
        evaluate = Evaluator(test, fit=(name == "w2s"), device=cfg.device)
        estimates = [sd.estimate_noise(y, "poisson-gaussian").noise_model for y in train]
        res = out["datasets"][name] = {}
        for units in cfg.units:
            runs = []
            for seed in cfg.seeds:
                print(f"{name}, {units}, seed {seed}", flush=True)
                runs.append(run(train, estimates, evaluate, units, seed, steps, preset,
                                cfg.device))
                print(f"    {runs[-1]['psnr']:.2f} dB, {runs[-1]['seconds']:.0f} s", flush=True)
                res[units] = {"psnr": float(np.mean([r["psnr"] for r in runs])), "runs": runs}
                save(out, cfg.out)
    print("\n| dataset | " + " | ".join(cfg.units) + " |")
    print("|---" * (len(cfg.units) + 1) + "|")
    for name, res in out["datasets"].items():
        cells = [" / ".join(f"{r['psnr']:.2f}" for r in res[u]["runs"])
                 + (f" (mean {res[u]['psnr']:.2f})" if len(res[u]["runs"]) > 1 else "")
                 for u in cfg.units]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
