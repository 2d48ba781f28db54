"""Noise-parameter benchmark: estimation accuracy, its cost in PSNR, and robustness (Fig. 2).

1. FMD confocal BPAE_B, fields 1-4: the single-frame estimate (``estimate_noise`` on one raw
   frame) of the gain and of the intercept read_noise^2 - gain * offset, for every raw frame,
   against the photon-transfer fit on the 50 frames of the same field. Target: within 10 %.
2. Synthetic Poisson-Gaussian data with known parameters, 512x512: clean images are the nine
   FMD 50-frame averages (shared/data), smoothed by a Gaussian of 1 px to remove their own
   residual noise, scaled to a peak of 100 or 400 photo-electrons; gains 0.5, 2, 8 ADU/e-;
   read noise 1, 3, 10 e-; offset 100 ADU (known). Target: gain within 5 %. Beside it, the
   Cramer-Rao bound on the gain's relative error with the clean image known (no estimator
   does better; where it nears 2.5 %, 5 % on every image is out of reach of any estimator).
3. Cost of estimating: a score network trained on raw frames of FMD fields 1-3; field 4
   denoised with the single-frame estimate vs with the photon-transfer parameters. Target:
   at most 0.3 dB.
4. Robustness (the paper's Figure 2): PSNR against the disturbance rate r of the parameters,
   each scalar parameter k -> (1 + a) k with a ~ N(0, r^2), r in 0, 0.05, 0.1, 0.2 (8 draws
   each), for Table 1 rows 14 and 15 (BSD68 -> Set12) and poisson-gaussian on FMD field 4.
   The correlation kernel of row 14 is not disturbed.
5. Stated errors: the gain's standard error as stated by ``estimate_noise`` (the larger of
   the fit's own and a jackknife's), and each of the two, against the spread of the gain over
   200 noise draws of one 256x256 scene (Poisson-Gaussian, and Gaussian of the same variance);
   ``--calibration-size`` and ``--jackknife-block`` compare image sizes and the jackknife's
   block sizes.
6. Large stacks: time and peak memory of ``estimate_noise`` on synthetic float32 stacks of
   32 x 1024^2 and 8 x 2048^2, each in a fresh process, with the default pixel budget
   (``max_pixels``) and with every plane measured (as before the budget).
7. Detector data: the gain from 512x512 images of kinds that real detectors give, 8 noise
   draws each: a photon counter (no offset, no read noise) in uint8, an analog detector whose
   offset is 0 (read noise clipped at 0), a 12-bit camera saturating at 4095 in a 16-bit
   file, a float image zero-filled or NaN outside its field.
8. Correlation kernels: the kernel of correlated models estimated from one 512x512 image
   (the nine FMD averages as clean images, as part 2), with the model's other parameters,
   against the truth; the main parameter beside it with the true kernel given and with the
   paper's kernel assumed (before the kernel was estimated). Real data: on FMD fields 1-4,
   the single-frame kernel of every 5th raw frame against the kernel from the 50 frames'
   differences.

9. One noise model per channel: the FMD pairs' three confocal channels of BPAE cells (B, G,
   R) as one three-channel image, and the same clean images through three simulated
   detectors of gains 1, 4 and 16 ADU/e-. A three-channel score network is trained on each
   noisy image and denoises it with each channel's own estimate (``estimate_noise`` with
   ``axes="CYX"``), against one noise model for all channels: fitted to all channels' pixels
   together, or channel 0's.

Usage:
    python benchmarks/noise.py               # all parts, default CPU budget (~15 min, 2 cores)
    python benchmarks/noise.py --parts 1,2   # estimation only (about a minute)
    python benchmarks/noise.py --parts 2 --synthetic-clean natural   # textured stress test
    python benchmarks/noise.py --parts 5     # stated errors against the spread (1.5 min)
    python benchmarks/noise.py --parts 6     # large stacks: time and memory (4 min, 8.5 GB)
    python benchmarks/noise.py --parts 7     # detector data: counts, clipping, fills
    python benchmarks/noise.py --parts 8     # correlation kernels: synthetic and FMD (6 min)
    python benchmarks/noise.py --parts 9     # one noise model per channel
    python benchmarks/noise.py --tiny        # smoke test
Writes benchmarks/results/noise.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, finish, header, need
from _noise_common import FMD, _blobs, _train, fmd_field, psnr  # noqa: F401 (smoothing imports these from here)
from noise_detectors import part_detectors, part_kernels


def part_fmd_estimation(cfg, out):
    rows = []
    print("\n| field | PT gain | PT intercept | single-frame gain (min-max) | intercept (min-max) "
          "| max error gain | max error intercept | gain: spread / stated error (detrended) |")
    print("|---|---|---|---|---|---|---|---|")
    for fov in (1, 2, 3, 4):
        stack, _ = fmd_field(fov, 128 if cfg.tiny else None)
        pt = sd.estimate_noise(stack, frames_axis=0)
        g0, c0 = pt.params["gain"], pt.derived["intercept"]
        frames = range(0, len(stack), 10 if cfg.tiny else 1)
        t0 = time.perf_counter()
        est = [sd.estimate_noise(stack[i]) for i in frames]
        sec = (time.perf_counter() - t0) / len(est)
        g = np.array([e.params["gain"] for e in est])
        c = np.array([e.derived["intercept"] for e in est])
        se = np.array([e.stderr["gain"] for e in est])
        # the stated errors against the spread over the frames, raw and about a linear trend
        # over the frame index (the scene bleaches and drifts over the 50 frames)
        t = np.arange(len(g))
        detrended = g - np.polyval(np.polyfit(t, g, 1), t)
        r = {"field": fov, "pt_gain": g0, "pt_intercept": c0, "pt_offset": pt.params["offset"],
             "pt_read_noise": pt.params["read_noise"], "gain": g.tolist(),
             "intercept": c.tolist(), "gain_stderr": se.tolist(),
             "max_err_gain": float(np.abs(g / g0 - 1).max()),
             "max_err_intercept": float(np.abs(c / c0 - 1).max()), "seconds_per_frame": sec,
             "spread_over_stated": float(g.std(ddof=1) / se.mean()),
             "spread_over_stated_detrended": float(detrended.std(ddof=2) / se.mean())}
        rows.append(r)
        print(f"| {fov} | {g0:.3f} | {c0:.2f} | {g.mean():.3f} ({g.min():.3f}-{g.max():.3f}) | "
              f"{c.mean():.2f} ({c.min():.2f}-{c.max():.2f}) | {100 * r['max_err_gain']:.1f} % |"
              f" {100 * r['max_err_intercept']:.1f} % | {r['spread_over_stated']:.2f} "
              f"({r['spread_over_stated_detrended']:.2f}) |", flush=True)
    out["fmd_estimation"] = rows


def gain_crb(x_e, read_e):
    """Relative standard deviation of the gain that no estimator beats on this image.

    The Cramer-Rao bound for var = gain * x + read^2 with the clean image x known (an oracle:
    a single-image estimator must also find x), every pixel an independent Gaussian. Gain and
    read noise are both unknown; the offset is known.
    """
    x = np.asarray(x_e, np.float64).ravel()
    v = x + read_e ** 2  # in e-^2 (gain 1): the bound on the relative error is scale-free
    J = np.stack([x, np.ones_like(x)], 1) / v[:, None]
    cov = np.linalg.inv(J.T @ J / 2)
    return float(np.sqrt(cov[0, 0]))


def part_synthetic(cfg, out):
    if cfg.synthetic_clean == "natural":  # textured everywhere: a stress test, not the target
        nat = need(DATA / "natural")
        names = sorted((nat / "Set12").glob("*.png")) + sorted((nat / "BSD68").glob("*.png"))[:12]
    else:
        names = sorted((FMD / "gt").glob("*/avg50.png")) + \
            sorted((need(DATA / "fmd_pairs") / "clean").glob("*.tif"))
    clean = [gaussian_filter(imread(f).astype(np.float64), 1.0) for f in names]
    if cfg.tiny:
        clean = [c[:128, :128] for c in clean[:2]]
    from scipy.stats import norm

    draws = 1 if cfg.tiny else cfg.synthetic_draws
    rows = []
    print(f"\n{len(clean)} images x {draws} noise draws per row")
    print("\n| peak (e-) | read noise (e-) | gain (ADU/e-) | mean error (signed) | median error | "
          "max error | estimates within 5 % | oracle: bound (sd) median / max | oracle: "
          "expected within 5 % | stated error: median | error / stated: rms, within 2 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for peak in (100, 400):
        for rn in (1, 3, 10):
            for gain in (0.5, 2.0, 8.0):
                cam = sd.get_noise_model("poisson-gaussian", gain=gain, offset=100.0,
                                         read_noise=rn * gain)
                errs, stated = [], []
                for d in range(draws):
                    for i, x in enumerate(clean):
                        y = cam.sample(x / x.max() * peak * gain, rng=i + 1000 * d)
                        y = np.clip(np.round(y), 0, 65535).astype(np.uint16)
                        try:
                            e = sd.estimate_noise(y, offset=100.0)
                            errs.append(e.params["gain"] / gain - 1)
                            stated.append(e.stderr["gain"] / gain)
                        except ValueError:  # e.g. too few unclipped pixels: a miss
                            errs.append(np.inf)
                            stated.append(np.nan)
                signed = np.asarray(errs)
                stated = np.asarray(stated)
                ok = np.isfinite(signed)
                z = signed[ok] / stated[ok]  # the error in stated standard errors
                errs = np.abs(signed)
                crb = [gain_crb(x / x.max() * peak, rn) for x in clean]
                # the oracle's share within 5 %, were its error Gaussian at its bound
                expect = float(np.mean([2 * norm.cdf(0.05 / c) - 1 for c in crb]))
                r = {"peak": peak, "read_noise_e": rn, "gain": gain, "draws": draws,
                     "errors": [float(e) if np.isfinite(e) else None for e in signed],
                     "stated": [float(v) if np.isfinite(v) else None for v in stated],
                     "oracle_bound": crb, "oracle_within_5": expect,
                     "rms_z": float(np.sqrt(np.mean(z ** 2))),
                     "within_2_stated": float(np.mean(np.abs(z) <= 2))}
                rows.append(r)
                fin = signed[np.isfinite(signed)]
                print(f"| {peak} | {rn} | {gain} | {100 * fin.mean():+.1f} % | "
                      f"{100 * np.median(errs):.1f} % | {100 * errs.max():.1f} % | "
                      f"{int((errs <= 0.05).sum())}/{len(errs)} | "
                      f"{100 * np.median(crb):.1f} / {100 * max(crb):.1f} % | "
                      f"{100 * expect:.0f} % | {100 * np.nanmedian(stated):.1f} % | "
                      f"{r['rms_z']:.2f}, {100 * r['within_2_stated']:.0f} % |", flush=True)
    out["synthetic" if cfg.synthetic_clean == "fmd" else "synthetic_natural"] = rows


def part_stated_errors(cfg, out):
    """The gain's stated standard error against its spread over many noise draws: the fit's
    own (Jacobian) error, the jackknife's, and the stated one (the larger)."""
    from scoredenoise import _measure as measure_module
    from scoredenoise.estimate import fit_noise_level

    n, draws = (128, 3) if cfg.tiny else (cfg.calibration_size, cfg.calibration_draws)
    if cfg.jackknife_block:  # compare block sizes of the jackknife's groups
        measure_module._JACKKNIFE_BLOCK = cfg.jackknife_block  # where the jackknife reads it
    x = _blobs(n, 800.0, seed=3)  # 400 e- at gain 2 ADU/e-
    rows = []
    print(f"\n{n}x{n} blobs on a ramp, gain 2 ADU/e-, read noise 6 e-, offset 100 ADU given; "
          f"{draws} draws; jackknife blocks of at most {measure_module._JACKKNIFE_BLOCK} pixels\n")
    print("| noise | mean gain | spread | fit's own error | jackknife | stated | spread / own | "
          "spread / jackknife | spread / stated |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("poisson-gaussian", "gaussian, same variance"):
        g, own, jack, stated = [], [], [], []
        for d in range(draws):
            rng = np.random.default_rng(20000 + d)
            if kind == "poisson-gaussian":
                y = 100 + 2.0 * rng.poisson(x / 2.0) + rng.normal(size=x.shape) * 12
            else:
                y = 100 + x + rng.normal(size=x.shape) * np.sqrt(2 * x + 144)
            est = sd.estimate_noise(y, offset=100.0)  # the stated error, and its measurement
            nlf = est.nlf
            fit = fit_noise_level(nlf, "poisson-gaussian", offset=100.0)  # the fit's own
            reps = []
            for rep in nlf.replicates:  # as estimate_noise: a replicate that fails is left out
                try:
                    reps.append(fit_noise_level(rep, "poisson-gaussian", offset=100.0)
                                .params["gain"])
                except ValueError:
                    continue
            reps = np.asarray(reps)
            g.append(fit.params["gain"])
            own.append(fit.stderr["gain"])
            jack.append(np.sqrt((len(reps) - 1) / len(reps) * np.sum((reps - reps.mean()) ** 2)))
            stated.append(est.stderr["gain"])
        g = np.asarray(g)
        spread = float(g.std(ddof=1))
        r = {"noise": kind, "size": n, "draws": draws,
             "jackknife_block": measure_module._JACKKNIFE_BLOCK, "gain": g.tolist(), "own": own,
             "jackknife": jack, "stated": stated, "spread": spread}
        rows.append(r)
        print(f"| {kind} | {g.mean():.4f} | {spread:.4f} | {np.mean(own):.4f} | "
              f"{np.mean(jack):.4f} | {np.mean(stated):.4f} | {spread / np.mean(own):.2f} | "
              f"{spread / np.mean(jack):.2f} | {spread / np.mean(stated):.2f} |", flush=True)
    out["stated_errors"] = rows


_LARGE_CHILD = """
import json, sys, time
import numpy as np
import scoredenoise as sd
n, side, budget = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
yy, xx = np.mgrid[:side, :side]
x = 800 + 400 * np.sin(xx / 60.0) * np.cos(yy / 45.0)  # 200-600 e- at gain 2
rng = np.random.default_rng(0)
y = np.empty((n, side, side), np.float32)
for i in range(n):
    y[i] = 100 + 2.0 * rng.poisson(x / 2.0) + rng.normal(size=x.shape) * 6
del x, yy, xx
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith(key + ":")) / 2 ** 20
before = status("VmRSS")
t0 = time.perf_counter()
est = sd.estimate_noise(y, offset=100.0, **({"max_pixels": budget} if budget else {}))
print(json.dumps({"seconds": time.perf_counter() - t0, "rss_before_gb": before,
                  "peak_rss_gb": status("VmHWM"), "gain": est.params["gain"],
                  "stderr": est.stderr["gain"]}))
"""


def part_large(cfg, out):
    """Time and peak memory of estimate_noise on large stacks, each in a fresh process (its
    VmHWM is its own peak), with the default pixel budget and with every plane measured."""
    from scoredenoise.nlf import MAX_PIXELS as _MAX_PIXELS

    cases = [(4, 256), (2, 512)] if cfg.tiny else [(32, 1024), (8, 2048)]
    rows = []
    print("\n| stack (float32) | pixels measured | seconds | RSS before | peak RSS | gain "
          "(true 2) |\n|---|---|---|---|---|---|")
    for n, side in cases:
        for budget in (0, n * side * side):  # 0: the default
            measured = min(n * side * side, budget or _MAX_PIXELS)
            p = subprocess.run([sys.executable, "-c", _LARGE_CHILD, str(n), str(side),
                                str(budget)], capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(p.stderr)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r.update(planes=n, side=side, pixels=measured, default=not budget)
            rows.append(r)
            label = "default" if not budget else "all"
            print(f"| {n} x {side}^2 | {measured / 1e6:.1f} M ({label}) | {r['seconds']:.0f} | "
                  f"{r['rss_before_gb']:.2f} GB | {r['peak_rss_gb']:.2f} GB | "
                  f"{r['gain']:.4f} +/- {r['stderr']:.4f} |", flush=True)
    out["large"] = rows


def _disturbed(nm, r, rng):
    vals = {}
    for p in nm.parameters():
        if p.kind == "float" and getattr(nm, p.name) != 0:
            vals[p.name] = float(getattr(nm, p.name)) * (1 + rng.normal(0, r))
    try:
        return nm.replace(**vals)
    except ValueError:  # a draw outside the admissible range: redraw
        return _disturbed(nm, r, rng)


def _robustness(model, nm, pairs, cfg):
    res = {}
    scores = [(y, model.score(y, device=cfg.device), x) for y, x in pairs]
    for r in (0.0, 0.05, 0.1, 0.2):
        rng = np.random.default_rng(int(r * 1000))
        draws = 1 if r == 0 else cfg.draws
        vals = []
        for _ in range(draws):
            cand = _disturbed(nm, r, rng) if r else nm
            vals.append(np.mean([psnr(sd.denoise(y, model, cand, score=s), x)
                                 for y, s, x in scores]))
        res[str(r)] = {"mean": float(np.mean(vals)), "min": float(np.min(vals))}
    return res


def part_fmd_cost_and_robustness(cfg, out):
    crop = 128 if cfg.tiny else None
    fields = {f: fmd_field(f, crop) for f in (1, 2, 3, 4)}
    train = [fields[f][0][:4].astype(np.float32) for f in (1, 2, 3)]
    model = _train(train, cfg, axes="SYX")
    stack, gt = fields[4]
    pt = sd.estimate_noise(stack, frames_axis=0)
    rows = []
    for i in range(4):
        y = stack[i].astype(np.float32)
        s = model.score(y, device=cfg.device)
        est = sd.estimate_noise(stack[i])
        rows.append({"frame": i, "estimated": est.noise_model.to_dict(),
                     "psnr_noisy": psnr(y, gt),
                     "psnr_photon_transfer": psnr(
                         sd.denoise(y, model, pt.noise_model, score=s), gt),
                     "psnr_estimated": psnr(
                         sd.denoise(y, model, est.noise_model, score=s), gt)})
    cost = float(np.mean([r["psnr_photon_transfer"] - r["psnr_estimated"] for r in rows]))
    out["fmd_cost"] = {"photon_transfer": pt.noise_model.to_dict(), "frames": rows,
                       "mean_cost_db": cost}
    print(f"\nFMD field 4, 4 frames: noisy {np.mean([r['psnr_noisy'] for r in rows]):.2f} dB | "
          f"photon-transfer parameters "
          f"{np.mean([r['psnr_photon_transfer'] for r in rows]):.2f} dB | single-frame "
          f"estimate {np.mean([r['psnr_estimated'] for r in rows]):.2f} dB | cost "
          f"{cost:+.3f} dB", flush=True)
    pairs = [(stack[i].astype(np.float32), gt) for i in range(4)]
    out.setdefault("robustness", {})["poisson-gaussian (FMD)"] = _robustness(
        model, pt.noise_model, pairs, cfg)


def part_natural_robustness(cfg, out):
    bsd = sorted(need(DATA / "natural" / "BSD68").glob("*.png"))
    s12 = sorted((DATA / "natural" / "Set12").glob("*.png"))
    train_clean = [imread(p).astype(np.float32) for p in bsd]
    test_clean = [imread(p).astype(np.float64) for p in s12]
    if cfg.tiny:
        train_clean, test_clean = train_clean[:3], [t[:64, :64] for t in test_clean[:2]]
    for row, name, params in ((14, "poisson-correlated+gaussian", dict(lam=0.2, sigma=10.0)),
                              (15, "rayleigh+gaussian", dict(rayleigh_sigma=0.3, sigma=10.0))):
        nm = sd.get_noise_model(name, **params)
        rng = np.random.default_rng(row)
        noisy = [nm.sample(c, rng).astype(np.float32) for c in train_clean]
        model = _train(noisy, cfg)
        pairs = [(nm.sample(c, rng).astype(np.float32), c) for c in test_clean]
        out.setdefault("robustness", {})[f"row {row} {name}"] = _robustness(model, nm, pairs,
                                                                            cfg)


def part_channels(cfg, out):
    """Each channel's own noise model against one for all channels (module docstring, 9)."""
    pairs = need(DATA / "fmd_pairs")
    crop = (slice(None), slice(0, 128), slice(0, 128)) if cfg.tiny else (slice(None),) * 3
    noisy = np.stack([imread(pairs / "noisy" / f"BPAE_{c}.tif") for c in "BGR"])[crop]
    clean = np.stack([imread(pairs / "clean" / f"BPAE_{c}.tif") for c in "BGR"])[crop]
    clean = clean.astype(np.float64)
    photons = gaussian_filter(clean, (0, 1, 1)) / 3.8  # FMD's gain: about 3.8 ADU/e-
    gains = (1.0, 4.0, 16.0)
    rng = np.random.default_rng(9)
    synth = np.stack([g * rng.poisson(p) + 100.0 + rng.normal(0, 2.0 * g, p.shape)
                      for g, p in zip(gains, photons)])
    cases = {"FMD BPAE B, G, R (real)": (noisy.astype(np.float32), clean, None),
             "gains 1, 4, 16 ADU/e- (synthetic)": (synth.astype(np.float32),
                                                  np.stack([g * p + 100.0 for g, p in
                                                            zip(gains, photons)]), gains)}
    res = {}
    for name, (y, x, true_gains) in cases.items():
        model = _train(y, cfg, axes="CYX")
        s = model.score(y, axes="CYX", device=cfg.device)
        own = sd.estimate_noise(y, axes="CYX")
        pooled = sd.estimate_noise(y, axes="ZYX")  # the channels' pixels as one image
        choices = {"each channel's own": [e.noise_model for e in own],
                   "one, fitted to all channels": [pooled.noise_model] * 3,
                   "one, channel 0's": [own[0].noise_model] * 3}
        row = {"gains_estimated": [e.params["gain"] for e in own],
               "gain_pooled": pooled.params["gain"], "true_gains": true_gains,
               "noisy": [psnr(y[c], x[c], float(np.ptp(x[c]))) for c in range(3)]}
        for label, nms in choices.items():
            d = sd.denoise(y, model, nms, score=s, axes="CYX")
            row[label] = [psnr(d[c], x[c], float(np.ptp(x[c]))) for c in range(3)]
        res[name] = row
        print(f"\n{name}: gains estimated per channel "
              + ", ".join(f"{g:.3f}" for g in row["gains_estimated"])
              + f"; fitted to all channels {row['gain_pooled']:.3f}", flush=True)
        print("| noise model | " + " | ".join(f"channel {c}" for c in range(3)) + " | mean |")
        print("|---|---|---|---|---|")
        for label in ("noisy", *choices):
            v = row[label]
            print(f"| {label} | " + " | ".join(f"{p:.2f}" for p in v)
                  + f" | {np.mean(v):.2f} |")
    out["channels"] = res


def print_robustness(out):
    rob = out.get("robustness", {})
    if not rob:
        return
    print("\n| noise model | r = 0 | r = 0.05 | r = 0.1 | r = 0.2 |")
    print("|---|---|---|---|---|")
    for k, v in rob.items():
        cells = " | ".join(f"{v[r]['mean']:.2f} (min {v[r]['min']:.2f})" if r != "0.0" else
                           f"{v[r]['mean']:.2f}" for r in ("0.0", "0.05", "0.1", "0.2"))
        print(f"| {k} | {cells} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="1,2,3,4", help="comma-separated, of 1-9")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--preset", default="default")
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--synthetic-draws", type=int, default=4,
                   help="part 2: noise draws per clean image (the first is the draw of the "
                        "earlier one-draw runs)")
    p.add_argument("--calibration-draws", type=int, default=200,
                   help="part 5: noise draws (about 0.2 s each per noise kind at 256x256)")
    p.add_argument("--calibration-size", type=int, default=256, help="part 5: image side")
    p.add_argument("--jackknife-block", type=int,
                   help="part 5: largest side of the jackknife's blocks (default: the "
                        "package's, 32)")
    p.add_argument("--device", default="auto")
    p.add_argument("--synthetic-clean", choices=["fmd", "natural"], default="fmd",
                   help="clean images of part 2: the nine FMD averages (the target), or 24 "
                        "natural images (Set12 and 12 of BSD68; textured everywhere)")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "noise.json")
    cfg = p.parse_args(argv)
    parts = {int(x) for x in cfg.parts.split(",")}
    if cfg.tiny:
        cfg.steps, cfg.preset, cfg.draws = 3, "small", 2
    out = header(cfg)
    t0 = time.perf_counter()
    if 1 in parts:
        part_fmd_estimation(cfg, out)
    if 2 in parts:
        part_synthetic(cfg, out)
    if 3 in parts or 4 in parts:
        part_fmd_cost_and_robustness(cfg, out)
    if 4 in parts:
        part_natural_robustness(cfg, out)
    if 5 in parts:
        part_stated_errors(cfg, out)
    if 6 in parts:
        part_large(cfg, out)
    if 7 in parts:
        part_detectors(cfg, out)
    if 8 in parts:
        part_kernels(cfg, out)
    if 9 in parts:
        part_channels(cfg, out)
    print_robustness(out)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
