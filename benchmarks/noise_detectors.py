"""Parts 7 and 8 of benchmarks/noise.py (run them from there: ``--parts 7,8``): detector data
(counts, clipping, fills) and correlation kernels, synthetic and on FMD."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, need
from _noise_common import FMD, _blobs, _train, fmd_field, psnr


def _detector_cases():
    """(name, true gain, draw(rng) -> image, known parameters) of part 7."""
    def camera(gain, offset, read, peak, rng, seed=5):
        x = _blobs(512, peak * gain, seed)
        return gain * rng.poisson(x / gain) + offset + read * rng.normal(size=x.shape)

    def filled(rng, value):
        y = camera(2.0, 100.0, 3.0, 750.0, rng)
        y[:, :100] = value
        return y

    return [
        ("photon counter, 5 counts peak, uint8", 1.0,
         lambda rng: rng.poisson(_blobs(512, 5.0, 5)).astype(np.uint8), {"offset": 0.0}),
        ("photon counter, 20 counts peak, uint8", 1.0,
         lambda rng: rng.poisson(_blobs(512, 20.0, 5)).astype(np.uint8), {"offset": 0.0}),
        ("analog, offset 0, read noise 3 ADU, 20 e- peak, uint16", 2.0,
         lambda rng: np.clip(np.round(camera(2.0, 0.0, 3.0, 20.0, rng)), 0, None)
         .astype(np.uint16), {"offset": 0.0}),
        ("12-bit camera in uint16, 1 % saturated", 2.0,
         lambda rng: np.minimum(np.round(camera(2.0, 100.0, 3.0, 2800.0, rng)), 4095)
         .astype(np.uint16), {"offset": 100.0}),
        ("12-bit camera in uint16, 4 % saturated", 2.0,
         lambda rng: np.minimum(np.round(camera(2.0, 100.0, 3.0, 3000.0, rng)), 4095)
         .astype(np.uint16), {"offset": 100.0}),
        ("float, 100 columns zero-filled", 2.0, lambda rng: filled(rng, 0.0),
         {"offset": 100.0}),
        ("float, 100 columns NaN", 2.0, lambda rng: filled(rng, np.nan), {"offset": 100.0}),
    ]


def _without_detector_handling():
    """A context in which clipping limits are only the dtype's and every model's clipped
    moments are the normal form's (the estimator before part 7's cases were handled)."""
    from contextlib import ExitStack
    from unittest import mock

    from scoredenoise import nlf, photon
    from scoredenoise.noise import NoiseModel
    from scoredenoise.noise._mixture import GaussianMixtureModel
    from scoredenoise.noise.poisson import Poisson

    stack = ExitStack()
    for module in (nlf, photon):  # where the noise level functions read it
        stack.enter_context(mock.patch.object(module, "_detected_limits", lambda v, lim: lim))
    for cls in (GaussianMixtureModel, Poisson):
        stack.enter_context(mock.patch.object(cls, "clipped_moments",
                                              NoiseModel.clipped_moments))
    return stack


def part_detectors(cfg, out):
    """The gain from images of the kinds real detectors give (clipping, fills, counts), and
    the same draws without the limit detection and the counts' exact clipped moments."""
    draws = 1 if cfg.tiny else 8
    rows = []
    print("\n| data | true gain | mean gain | max error | within 3 stated errors | "
          "limits found | without: mean gain, max error |\n|---|---|---|---|---|---|---|")
    for name, gain, draw, known in _detector_cases():
        g, se, clip, old = [], [], None, []
        for d in range(draws):
            y = draw(np.random.default_rng(30000 + d))
            est = sd.estimate_noise(y, **known)
            g.append(est.params["gain"])
            se.append(est.stderr["gain"])
            clip = est.nlf.clip
            with _without_detector_handling():
                try:
                    old.append(sd.estimate_noise(y, **known).params["gain"])
                except ValueError:  # refused: the variance does not grow with the mean
                    old.append(float("nan"))
        g, se, old = np.asarray(g), np.asarray(se), np.asarray(old)
        err = g / gain - 1
        r = {"data": name, "true_gain": gain, "gain": g.tolist(), "stderr": se.tolist(),
             "clip": list(clip) if clip else None, "gain_without": old.tolist()}
        rows.append(r)
        lim = "none" if clip is None else ", ".join(f"{c:g}" for c in clip if np.isfinite(c))
        refused = int(np.isnan(old).sum())
        before = (f"{np.nanmean(old):.4f}, {100 * np.nanmax(np.abs(old / gain - 1)):.1f} %"
                  if refused < draws else "-")
        if refused:
            before += f" ({refused} refused)"
        print(f"| {name} | {gain:g} | {g.mean():.4f} | {100 * np.abs(err).max():.1f} % | "
              f"{int(np.sum(np.abs(g - gain) < 3 * se))}/{draws} | {lim} | {before} |",
              flush=True)
    out["detectors"] = rows


_CROSS = ((0.0, 0.1, 0.0), (0.1, 0.6, 0.1), (0.0, 0.1, 0.0))
_SCAN = ((0.15, 0.7, 0.15),)


def _kernel_cases():
    """(label, model name, parameters, main parameter, peak of the clean image, shape)."""
    from scoredenoise.noise import PAPER_KERNEL

    return [
        ("gaussian-correlated, paper's kernel", "gaussian-correlated",
         {"sigma": 10.0, "kernel": PAPER_KERNEL}, "sigma", 255.0, (3, 3)),
        ("gaussian-correlated, cross kernel", "gaussian-correlated",
         {"sigma": 10.0, "kernel": _CROSS}, "sigma", 255.0, (3, 3)),
        ("poisson-correlated, scan-line kernel (1x3)", "poisson-correlated",
         {"lam": 0.5, "kernel": _SCAN}, "lam", 200.0, (1, 3)),
        ("row 14: poisson-correlated+gaussian, paper's kernel", "poisson-correlated+gaussian",
         {"lam": 0.5, "sigma": 5.0, "kernel": PAPER_KERNEL}, "lam", 200.0, (3, 3)),
        ("white noise fitted as gaussian-correlated", "gaussian",
         {"sigma": 10.0}, "sigma", 255.0, (3, 3)),
    ]


def part_kernels(cfg, out):
    """The correlation kernel estimated from one image (synthetic, known truth) and from one
    FMD frame against the kernel of its field's 50 frames."""
    from scoredenoise.estimate_kernel import estimate_noise_kernel
    from scoredenoise.noise import PAPER_KERNEL

    names = sorted((FMD / "gt").glob("*/avg50.png")) + \
        sorted((need(DATA / "fmd_pairs") / "clean").glob("*.tif"))
    clean = [gaussian_filter(imread(f).astype(np.float64), 1.0) for f in names]
    if cfg.tiny:
        clean = [c[:128, :128] for c in clean[:2]]
    rows = []
    print("\n| data | kernel error: median / max (largest weight error) | error / stated: rms "
          "| main parameter error: kernel estimated | kernel known | paper's kernel assumed "
          "| stated error (estimated / known) |\n|---|---|---|---|---|---|---|")
    for label, name, params, main, peak, shape in _kernel_cases():
        nm = sd.get_noise_model(name, **params)
        fit_as = "gaussian-correlated" if name == "gaussian" else name
        true_k = np.asarray(params.get("kernel", np.eye(1)), dtype=np.float64)
        if true_k.shape != shape:  # white noise: the centred delta of the fitted shape
            true_k = np.zeros(shape)
            true_k[shape[0] // 2, shape[1] // 2] = 1.0
        kerr, z, e_est, e_known, e_paper, se_est, se_known = [], [], [], [], [], [], []
        for i, c in enumerate(clean):
            y = nm.sample(10 + c / c.max() * peak, rng=50000 + i)
            est = sd.estimate_noise(y, fit_as, kernel_shape=shape)
            k = np.asarray(est.noise_model.kernel)
            kerr.append(float(np.abs(k - true_k).max()))
            z.append(float(np.sqrt(np.mean(((k - true_k) / est.kernel.stderr) ** 2))))
            known = sd.estimate_noise(y, fit_as, kernel=true_k)
            paper = sd.estimate_noise(y, fit_as, kernel=PAPER_KERNEL)
            e_est.append(est.params[main] / params[main] - 1)
            e_known.append(known.params[main] / params[main] - 1)
            e_paper.append(paper.params[main] / params[main] - 1)
            se_est.append(est.stderr[main] / params[main])
            se_known.append(known.stderr[main] / params[main])
        a = {k: np.asarray(v) for k, v in dict(e=e_est, k=e_known, p=e_paper).items()}
        r = {"data": label, "kernel_error": kerr, "kernel_z_rms": z, "main": main,
             "error_estimated": e_est, "error_known": e_known, "error_paper": e_paper,
             "stderr_estimated": se_est, "stderr_known": se_known}
        rows.append(r)

        def pct(v):
            return f"{100 * np.median(np.abs(v)):.1f} / {100 * np.abs(v).max():.1f} %"

        print(f"| {label} | {np.median(kerr):.4f} / {max(kerr):.4f} | "
              f"{np.sqrt(np.mean(np.square(z))):.2f} | {main}: {pct(a['e'])} | {pct(a['k'])} | "
              f"{pct(a['p'])} | {100 * np.median(se_est):.1f} / "
              f"{100 * np.median(se_known):.1f} % |", flush=True)
    out["kernels"] = rows
    # real data: FMD, one frame against its field's 50 frames
    fmd = []
    print("\n| FMD field | 50 frames: centre, left/right neighbour (reduced chi2) | one frame: "
          "centre mean (spread), neighbour mean (spread) | stated error: centre, neighbour | "
          "frames within 3 stated errors of the 50-frame kernel |\n|---|---|---|---|---|")
    for fov in ((1,) if cfg.tiny else (1, 2, 3, 4)):
        stack, _ = fmd_field(fov, crop=128 if cfg.tiny else None)
        pt = estimate_noise_kernel(stack, frames_axis=0)
        frames = range(0, len(stack), 5)
        ks = [estimate_noise_kernel(stack[i]) for i in frames]
        kc = np.array([k.kernel for k in ks])
        se = np.array([k.stderr for k in ks])
        within = int(np.sum(np.all(np.abs(kc - pt.kernel) < 3 * se, axis=(1, 2))))
        fmd.append({"field": fov, "photon_transfer": pt.kernel.tolist(), "pt_chi2": pt.chi2,
                    "frames": list(frames), "kernels": kc.tolist(), "stderr": se.tolist(),
                    "within_3_se": within})
        print(f"| {fov} | {pt.kernel[1, 1]:.3f}, {pt.kernel[1, 0]:.3f} ({pt.chi2:.1f}) | "
              f"{kc[:, 1, 1].mean():.3f} ({kc[:, 1, 1].std():.3f}), {kc[:, 1, 0].mean():.3f} "
              f"({kc[:, 1, 0].std():.3f}) | {np.median(se[:, 1, 1]):.3f}, "
              f"{np.median(se[:, 1, 0]):.3f} | {within}/{len(ks)} |", flush=True)
    out["kernels_fmd"] = fmd
    part_kernel_cost(cfg, out, clean)


def part_kernel_cost(cfg, out, clean):
    """What the kernel costs in PSNR: a score network trained on six of the nine images with
    noise through the cross kernel; the other three denoised with the true model, with the
    kernel and sigma estimated from each image alone, and with sigma estimated under the
    paper's kernel (before)."""
    from scoredenoise.noise import PAPER_KERNEL

    nm = sd.get_noise_model("gaussian-correlated", sigma=10.0, kernel=_CROSS)
    scaled = [10 + c / c.max() * 255 for c in clean]
    train, test = (scaled[:1], scaled[1:2]) if cfg.tiny else (scaled[:6], scaled[6:])
    rng = np.random.default_rng(8)
    model = _train([nm.sample(c, rng).astype(np.float32) for c in train], cfg)
    rows = []
    for i, x in enumerate(test):
        y = nm.sample(x, rng).astype(np.float32)
        s = model.score(y, device=cfg.device)
        est = sd.estimate_noise(y, "gaussian-correlated")
        paper = sd.estimate_noise(y, "gaussian-correlated", kernel=PAPER_KERNEL)
        peak = float(x.max())
        r = {"image": i, "noisy": psnr(y, x, peak),
             "true": psnr(sd.denoise(y, model, nm, score=s), x, peak),
             "estimated": psnr(sd.denoise(y, model, est.noise_model, score=s), x, peak),
             "paper": psnr(sd.denoise(y, model, paper.noise_model, score=s), x, peak),
             "sigma_estimated": est.params["sigma"], "sigma_paper": paper.params["sigma"]}
        rows.append(r)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("noisy", "true", "estimated",
                                                               "paper")}
    out["kernel_cost"] = {"rows": rows, "mean": mean}
    print(f"\ncross-kernel noise, {len(rows)} test images (PSNR, peak of each clean image): "
          f"noisy {mean['noisy']:.2f} dB | true model {mean['true']:.2f} dB | kernel and sigma "
          f"estimated {mean['estimated']:.2f} dB | paper's kernel assumed "
          f"{mean['paper']:.2f} dB", flush=True)
