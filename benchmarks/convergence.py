"""Convergence benchmark: PSNR and SSIM against training time, ours against Neighbor2Neighbor.

The same data, the same machine and about the same training time for both methods, side by
side in one run; everything else is each method's library default, as a user gets it
(``scoredenoise.train(images)`` and ``objective="neighbor2neighbor"``), but the same network:
the one the score model's library default picks for the data (``preset=None``: since
2026-12-07 the small preset for these photon-starved sets, at its default 4000 steps, the
score averaged over the 8 orientations by ``tta="auto"``), given to Neighbor2Neighbor too
(whose own default is the default preset; ``--preset`` sets both). Ours solves with
the ``poisson-gaussian`` model whose parameters ``scoredenoise.estimate_noise`` measures on each
test image (the user's path; no calibration). The same score (no retraining) is also solved
with ``emccd`` (estimated likewise), the model of photomultiplier and electron-multiplying
detectors, whose pulses of random height make the real data a continuum, not a comb of counts.

Datasets (../shared/data):

- ``fmd``: FMD confocal BPAE nuclei, trained on 4 raw frames of each of fields 1-3, tested on 4
  raw frames of field 4 against its 50-frame average: frames 0-3 (``--fmd-frames first``, the
  default, as issue 21 measured) or 23-26 (``middle``). The specimen drifts over the 50
  frames (field 4's mean brightness rises 11 %), so the average differs from the signal of
  its first frames by about 2.5 ADU^2 of MSE (a perfect denoiser of frame 0 scores about 44
  dB against it), and from that of its middle frames by nothing measurable;
- ``pairs``: the five FMD noisy/clean pairs (BPAE_B/G/R, fish, mice), trained on the five noisy
  frames and tested on them;
- ``w2s``: W2S low-light widefield, views 001-010, channels 0-2: trained on the 30 noisy frames
  (single-channel images), each tested against its 400-frame average with its own estimated
  noise model. The 8-bit W2S files were scaled one by one (noisy and average differ by a
  factor 0.5-0.9), so besides the plain PSNR the table gives the PSNR after the least-squares
  affine fit of the result to the reference (``psnr_fit``), the usual measure for such data
  (CARE, Weigert et al. 2018).

Two measurements per dataset and method:

1. the curve: one run of about ``--budget`` seconds (10 min), its model saved ``--points``
   times and evaluated afterwards (evaluation time is not training time);
2. the defaults: ``scoredenoise.train`` with its default step count, timed, and evaluated.

Usage:
    python benchmarks/convergence.py                       # all three (about 2.5 h on 2 cores)
    python benchmarks/convergence.py --datasets fmd --budget 300
    python benchmarks/convergence.py --no-curve            # the defaults only
    python benchmarks/convergence.py --no-curve --datasets w2s --seeds 0,1,2   # mean of 3
    python benchmarks/convergence.py --datasets fmd --no-curve --fmd-frames middle
    python benchmarks/convergence.py --tiny                # smoke test
Writes benchmarks/results/convergence.json, docs/images/convergence.png (``--plot``; only
when curves were run, so ``--no-curve`` keeps the figure) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import (
    DATA,
    FMD_FRAMES,
    ROOT,
    add_fmd_frames_flag,
    finish,
    fmd_average,
    fmd_frames,
    header,
    need,
    save,
)

METHODS = {"ours": "score", "neighbor2neighbor": "neighbor2neighbor"}
DATASETS = ("fmd", "pairs", "w2s")


def psnr(x, ref, peak=255.0):
    return float(10 * np.log10(peak ** 2 / np.mean((np.asarray(x, np.float64) - ref) ** 2)))


def ssim(x, ref, peak=255.0):
    from skimage.metrics import structural_similarity
    return float(structural_similarity(np.asarray(x, np.float64), ref, data_range=peak))


def affine_fit(x, ref):
    """``a x + b`` with a, b minimising the squared error to ``ref``."""
    x = np.asarray(x, np.float64)
    a, b = np.polyfit(x.ravel(), ref.ravel(), 1)
    return a * x + b


def load(name: str, crop: int | None, frames: str = "first"):
    """(training images, [(name, noisy, reference)]) of a dataset: the noisy images as their
    files hold them (uint8), the references as float64."""
    import tifffile

    def cut(a):
        return a[..., :crop, :crop] if crop else a

    if name == "fmd":
        gt = fmd_average(4)
        train = [cut(fmd_frames(f, range(4))) for f in (1, 2, 3)]
        picks = FMD_FRAMES[frames]
        return train, [(f"field 4 frame {i}", cut(y), cut(gt))
                       for i, y in zip(picks, fmd_frames(4, picks))]
    if name == "pairs":
        root = need(DATA / "fmd_pairs")
        names = sorted(p.stem for p in (root / "noisy").glob("*.tif"))
        noisy = [cut(tifffile.imread(root / "noisy" / f"{n}.tif")) for n in names]
        clean = [cut(tifffile.imread(root / "clean" / f"{n}.tif").astype(np.float64))
                 for n in names]
        return noisy, list(zip(names, noisy, clean))
    if name == "w2s":
        root = need(DATA / "w2s_widefield")
        names = [f"{v:03d}_{c}" for v in range(1, 11) for c in range(3)]
        if crop:
            names = names[::10]
        noisy = [cut(tifffile.imread(root / "noisy" / f"{n}.tif")) for n in names]
        clean = [cut(tifffile.imread(root / "clean" / f"{n}.tif").astype(np.float64))
                 for n in names]
        return noisy, list(zip(names, noisy, clean))
    raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")


def _mean(rows) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]
            if k not in ("image", "sigma_a", "score_factor")}


class Evaluator:
    """PSNR / SSIM of a model on a test set; ours with each image's estimated noise model."""

    def __init__(self, test, fit: bool, device):
        self.test, self.fit, self.device = test, fit, device
        self._noise = {}

    def noise_model(self, name, y, family="poisson-gaussian"):
        if (name, family) not in self._noise:
            self._noise[name, family] = sd.estimate_noise(y, family).noise_model
        return self._noise[name, family]

    def _metrics(self, x, ref) -> dict:
        r = {"psnr": psnr(x, ref), "ssim": ssim(x, ref)}
        if self.fit:
            xf = affine_fit(x, ref)
            r.update(psnr_fit=psnr(xf, ref), ssim_fit=ssim(xf, ref))
        return r

    def __call__(self, model) -> dict:
        """The method as a user gets it (ours: ``denoise`` with the ``poisson-gaussian``
        estimate, its sigma_a chosen for the image); for ours also the same model solved
        with the ``emccd`` estimate (``alt``: no retraining; the network evaluated at the
        sigma_a chosen under that model)."""
        rows, alt = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", sd.ImplausibleSolutionWarning)
            for name, y, ref in self.test:
                if model.kind == "score":
                    nm = self.noise_model(name, y)
                    s = model.score(y, noise_model=nm, device=self.device)
                    x = sd.denoise(y, model, nm, score=s)
                    rows.append({"image": name, "sigma_a": s.sigma_a,
                                 "score_factor": getattr(s.sigma_a, "factor", 1.0),
                                 **self._metrics(x, ref)})
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", sd.ImplausibleSolutionWarning)
                        ne = self.noise_model(name, y, "emccd")
                        se = model.score(y, noise_model=ne, device=self.device)
                        xe = sd.denoise(y, model, ne, score=se)
                    alt.append({"image": name, "sigma_a": se.sigma_a,
                                "score_factor": getattr(se.sigma_a, "factor", 1.0),
                                **self._metrics(xe, ref)})
                else:
                    x = sd.denoise(y, model, device=self.device)
                    rows.append({"image": name, **self._metrics(x, ref)})
        implausible = sum(issubclass(w.category, sd.ImplausibleSolutionWarning)
                          for w in caught)
        out = {**_mean(rows), "images": rows, "implausible_warnings": implausible}
        if alt:
            out["emccd"] = {**_mean(alt), "images": alt}
        return out

    def noisy(self) -> dict:
        rows = [{"psnr": psnr(y, ref), "ssim": ssim(y, ref),
                 **({"psnr_fit": psnr(affine_fit(y, ref), ref)} if self.fit else {})}
                for _, y, ref in self.test]
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def score_preset(train) -> str:
    """The network ``scoredenoise.train(train)`` builds for the score model (``preset=None``:
    small for photon-starved data, whose score network is sigma-conditioned)."""
    from scoredenoise.sampling import PatchSampler
    from scoredenoise.training import auto_conditioned, default_preset

    return default_preset(auto_conditioned(PatchSampler(train, patch_size=64)))


def seconds_per_step(objective, train, cfg) -> float:
    """A short timing run (after a warm-up) to size the curve's step count."""
    times = []
    sd.train(train, objective=objective, steps=12, seed=0, device=cfg.device,
             preset=cfg.preset, progress=lambda i, n, logs: times.append(logs["elapsed"]))
    return (times[-1] - times[1]) / (len(times) - 2)


def curve(objective, train, evaluate, cfg) -> list:
    """One run of about cfg.budget seconds, saved every tenth and evaluated afterwards."""
    steps = max(10, int(cfg.budget / seconds_per_step(objective, train, cfg)))
    every = max(1, steps // cfg.points)
    tmp = Path(tempfile.mkdtemp(prefix="sd-convergence-"))
    saved, last = [], {}

    def hook(step, total, logs):
        last["elapsed"] = logs["elapsed"]
        if step % every == 0 and step < total:  # the checkpoint of this step is written
            path = tmp / f"step{step}.sdmodel"
            shutil.copyfile(tmp / "run.sdmodel", path)
            saved.append((step, logs["elapsed"], path))

    try:
        model = sd.train(train, objective=objective, steps=steps, seed=cfg.seed,
                         device=cfg.device,
                         preset=cfg.preset, checkpoint=tmp / "run.sdmodel",
                         checkpoint_every=every, progress=hook)
        final = (steps, last["elapsed"], None)
        points = []
        for step, elapsed, path in [*saved, final]:
            m = model if path is None else sd.load_model(path)
            r = evaluate(m)
            points.append({"step": step, "seconds": elapsed, **r})
            print(f"    step {step:5d}  {elapsed:6.0f} s  PSNR {r['psnr']:.2f} dB"
                  + (f" (fitted {r['psnr_fit']:.2f})" if "psnr_fit" in r else "")
                  + (f"; emccd solve {r['emccd']['psnr']:.2f}" if "emccd" in r else ""),
                  flush=True)
        return points
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def defaults(objective, train, evaluate, cfg, saved: Path | None = None,
             seed: int | None = None) -> dict:
    """The library's default training of ``objective`` on ``train`` (with ``seed``, default
    ``cfg.seed``), evaluated; or a model saved from such a run (``saved``: its file),
    evaluated without training again."""
    if saved is not None:
        model = sd.load_model(Path(saved))
        return {"steps": model.meta["steps_done"], "seconds": None, "model": str(saved),
                **evaluate(model)}
    t0 = time.perf_counter()
    model = sd.train(train, objective=objective, seed=cfg.seed if seed is None else seed,
                     device=cfg.device, preset=cfg.preset,
                     **({"steps": cfg.steps} if cfg.steps else {}))
    seconds = time.perf_counter() - t0
    return {"steps": model.meta["steps_done"], "seconds": seconds, **evaluate(model)}


def _mean_of(runs: list) -> dict:
    """The mean of several evaluations of the same test set, key by key (per image too):
    floats averaged, with the spread between runs (standard deviation) as ``psnr_sd`` etc.;
    implausible warnings summed; anything else kept where the runs agree, else None."""
    out = {}
    for k, v in runs[0].items():
        vals = [r[k] for r in runs]
        if isinstance(v, float):
            out[k] = float(np.mean(vals))
            if k.startswith(("psnr", "ssim")):
                out[f"{k}_sd"] = float(np.std(vals, ddof=1))
        elif k == "implausible_warnings":
            out[k] = sum(vals)
        elif isinstance(v, dict):
            out[k] = _mean_of(vals)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out[k] = [_mean_of(list(rows)) for rows in zip(*vals)]
        else:
            out[k] = v if all(x == v for x in vals) else None
    return out


def defaults_over_seeds(objective, train, evaluate, cfg, saved=None) -> dict:
    """:func:`defaults` once per seed of ``cfg.seeds`` (``[cfg.seed]`` unless given), or
    once per saved model of ``saved`` (a list), with their mean (and spread, ``*_sd``) and
    each run under ``"runs"``: on photon-starved data the training's random stream alone
    moves one run by up to 2 dB."""
    seeds = cfg.seeds
    paths = saved if saved else [None] * len(seeds)
    runs = []
    for seed, path in zip(seeds, paths):
        d = defaults(objective, train, evaluate, cfg, path, seed)
        runs.append({"seed": seed, **d})
        if len(seeds) > 1:
            print(f"    seed {seed}: PSNR {d['psnr']:.2f} dB"
                  + (f" (fitted {d['psnr_fit']:.2f})" if "psnr_fit" in d else ""), flush=True)
    if len(runs) == 1:
        return {k: v for k, v in runs[0].items() if k != "seed"}
    return {**_mean_of(runs), "seeds": seeds, "runs": runs}


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [d for d in DATASETS if d in out["datasets"]]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        res = out["datasets"][name]
        key = "psnr_fit" if "psnr_fit" in res["noisy"] else "psnr"
        for method, style in (("ours", "C0"), ("neighbor2neighbor", "C1")):
            pts = res.get("curve", {}).get(method)
            if pts:
                ax.plot([p["seconds"] / 60 for p in pts], [p[key] for p in pts], "o-",
                        color=style, label=f"{method} (one run)")
            if pts and "emccd" in pts[0]:
                ax.plot([p["seconds"] / 60 for p in pts], [p["emccd"][key] for p in pts],
                        "s--", color=style, mfc="none",
                        label=f"{method}, same models solved with emccd")
            d = res.get("defaults", {}).get(method)
            if d and d["seconds"] is not None:  # (a saved model's run has no time here)
                ax.plot([d["seconds"] / 60], [d[key]], "*", ms=14, color=style,
                        label=f"{method}, defaults ({d['steps']} steps)")
                if "emccd" in d:
                    ax.plot([d["seconds"] / 60], [d["emccd"][key]], "P", ms=10, color=style,
                            label=f"{method}, defaults, emccd solve")
        ax.axhline(res["noisy"][key], color="0.5", ls=":", label="noisy input")
        ax.set_title({"fmd": "FMD confocal, field 4", "pairs": "FMD pairs (mean of 5)",
                      "w2s": "W2S widefield (mean of 30)"}[name])
        ax.set_xlabel("training time (min, 2-core CPU)")
        ax.set_ylabel("PSNR (dB)" + (", affine fit" if key == "psnr_fit" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def print_tables(out: dict) -> None:
    for name, res in out["datasets"].items():
        fit = "psnr_fit" in res["noisy"]
        print(f"\n{name}: noisy {res['noisy']['psnr']:.2f} dB"
              + (f" (fitted {res['noisy']['psnr_fit']:.2f})" if fit else ""))
        print("| method | steps | training (s) | PSNR (dB) | SSIM |"
              + (" PSNR, fitted |" if fit else "") + " implausible |")
        print("|---|---|---|---|---|" + ("---|" if fit else "") + "---|")
        def line(label, steps, seconds, d, implausible, fit=fit):
            took = "saved" if seconds is None else f"{seconds:.0f}"
            def pm(k):  # the mean of several seeds with their spread
                return f"{d[k]:.2f}" + (f" +- {d[k + '_sd']:.2f}" if k + "_sd" in d else "")
            print(f"| {label} | {steps} | {took} | {pm('psnr')} | {d['ssim']:.3f} |"
                  + (f" {pm('psnr_fit')} |" if fit else "") + f" {implausible} |")

        for method, d in res.get("defaults", {}).items():
            line(f"{method} (defaults)" + (f", mean of seeds {d['seeds']}" if "runs" in d
                                           else ""),
                 d["steps"], d["seconds"], d, d["implausible_warnings"])
            if "emccd" in d:
                line(f"{method} (defaults), emccd solve", d["steps"], d["seconds"], d["emccd"],
                     "-")
        for method, pts in res.get("curve", {}).items():
            key = "psnr_fit" if fit else "psnr"
            best = max(pts, key=lambda p: p[key])
            line(f"{method} (best of the curve)", best["step"], best["seconds"], best,
                 best["implausible_warnings"])
            if "emccd" in pts[0]:
                best = max(pts, key=lambda p: p["emccd"][key])
                line(f"{method} (best of the curve), emccd solve", best["step"],
                     best["seconds"], best["emccd"], "-")
        per = res.get("defaults", {})
        if "ours" in per and len(per["ours"]["images"]) <= 5:
            cols = {m: per[m] for m in per}
            if "emccd" in per["ours"]:
                cols["ours, emccd solve"] = per["ours"]["emccd"]
            print("| image | " + " | ".join(cols) + " |")
            print("|---|" + "---|" * len(cols))
            for i, row in enumerate(per["ours"]["images"]):
                print(f"| {row['image']} | " + " | ".join(
                    f"{cols[m]['images'][i]['psnr']:.2f}" for m in cols) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budget", type=float, default=600.0,
                   help="seconds of training of each curve (default 10 min)")
    p.add_argument("--points", type=int, default=5, help="models evaluated per curve")
    p.add_argument("--no-curve", action="store_true", help="only the default training")
    p.add_argument("--no-defaults", action="store_true", help="only the curves")
    p.add_argument("--steps", type=int, default=None,
                   help="steps of the 'defaults' run (default: the library's)")
    p.add_argument("--preset", default=None, choices=["small", "default", "large"],
                   help="one network size for both methods (default: each method's library "
                        "default for the data)")
    p.add_argument("--seed", type=int, default=0, help="training seed of every method")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                   default=None, metavar="S,S,...",
                   help="train the defaults once per seed and report their mean and spread "
                        "(e.g. 0,1,2); --model then takes one file per seed, comma-separated")
    p.add_argument("--device", default="auto")
    add_fmd_frames_flag(p)
    p.add_argument("--plot", type=lambda v: Path(v) if v else None,
                   default=ROOT / "docs" / "images" / "convergence.png",
                   help="the curves' PNG ('' for none)")
    p.add_argument("--merge", action="store_true",
                   help="add the results to those already in --out (e.g. one method at a time)")
    p.add_argument("--model", action="append", default=[], metavar="METHOD=PATH",
                   help="evaluate this saved model of METHOD (a default run's, on the one "
                        "dataset given) instead of training it again; repeatable")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "convergence.json")
    cfg = p.parse_args(argv)
    cfg.datasets = [d.strip() for d in cfg.datasets.split(",") if d.strip()]
    cfg.methods = [m.strip() for m in cfg.methods.split(",") if m.strip()]
    cfg.seeds = cfg.seeds or [cfg.seed]
    try:
        cfg.model = {k.strip(): v.split(",") for k, v in (a.split("=", 1) for a in cfg.model)}
    except ValueError:
        p.error(f"--model takes METHOD=PATH, got {cfg.model}")
    for method, paths in cfg.model.items():
        if len(paths) != len(cfg.seeds):
            p.error(f"--model {method}= gives {len(paths)} files for {len(cfg.seeds)} "
                    f"seeds; give one file per seed of --seeds")
    bad = [d for d in cfg.datasets if d not in DATASETS] + \
        [m for m in cfg.methods if m not in METHODS]
    bad += [m for m in cfg.model if m not in METHODS]
    if bad:
        p.error(f"unknown datasets or methods {bad}; datasets: {DATASETS}, methods: "
                f"{tuple(METHODS)}")
    if cfg.model and len(cfg.datasets) != 1:
        p.error(f"--model evaluates a model of one dataset; give one --datasets, got "
                f"{cfg.datasets}")
    crop = None
    if cfg.tiny:
        crop, cfg.budget, cfg.points, cfg.steps, cfg.preset = 128, 3.0, 2, 4, "small"
    out = {**header(cfg), "datasets": {}}
    if cfg.merge and cfg.out.exists():  # add these methods to an earlier run's results
        out = json.loads(cfg.out.read_text())
        out.setdefault("runs", []).append(header(cfg))
    t0 = time.perf_counter()
    for name in cfg.datasets:
        train, test = load(name, crop, cfg.fmd_frames)
        evaluate = Evaluator(test, fit=(name == "w2s"), device=cfg.device)
        res = out["datasets"].setdefault(name, {"curve": {}, "defaults": {}})
        res["noisy"] = evaluate.noisy()
        # the same network for both methods: the score model's default for these data
        dcfg = argparse.Namespace(**{**vars(cfg), "preset": cfg.preset or score_preset(train)})
        res["preset"] = dcfg.preset
        for method in cfg.methods:
            objective = METHODS[method]
            if not cfg.no_defaults:
                print(f"{name}, {method}: default training", flush=True)
                d = res["defaults"][method] = defaults_over_seeds(
                    objective, train, evaluate, dcfg, cfg.model.get(method))
                took = "saved model" if d["seconds"] is None else f"{d['seconds']:.0f} s"
                print(f"    {d['steps']} steps, {took}: PSNR {d['psnr']:.2f} dB"
                      + (f" (fitted {d['psnr_fit']:.2f})" if "psnr_fit" in d else "")
                      + (f"; emccd solve {d['emccd']['psnr']:.2f}" if "emccd" in d else ""),
                      flush=True)
                save(out, cfg.out)
            if not cfg.no_curve:
                print(f"{name}, {method}: curve ({cfg.budget:.0f} s)", flush=True)
                res["curve"][method] = curve(objective, train, evaluate, dcfg)
                save(out, cfg.out)
    print_tables(out)
    # the figure shows curves: a run without any (--no-curve) leaves the last one in place
    curves = any(res.get("curve") for res in out["datasets"].values())
    if cfg.plot and curves:
        plot(out, cfg.out.with_suffix(".png") if cfg.tiny else cfg.plot)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
