"""Quality benchmark: the paper's comparison (Tables 2-4) at CPU scale, plus real FMD data.

Natural images (0-255, as in the paper): train on BSD68, test on Set12, one network and one
training budget for every learned method. Rows (Table 1 numbers; parameters as in the paper):

  1  gaussian sigma=25                 2  gaussian sigma=25 with A (Eq. 30)
  3  gaussian, signal-dependent a=0.98 b=25
  5  gamma alpha=26                    7  poisson lam=0.2
  9  rayleigh sigma=0.3                10 rayleigh sigma=0.3 with A
  11 gamma alpha=26 + gaussian 10      13 poisson lam=0.2 + gaussian sigma=10
  15 rayleigh sigma=0.3 + gaussian 10

Columns: noisy input, a classical baseline (NL-means calibrated self-supervised by
scikit-image's J-invariance), ours (score network trained on noisy images only + the row's
noise model), Neighbor2Neighbor and IDDP (trained on the same noisy images, same network and
budget), and a supervised network (clean targets; the upper bound).

Real data: FMD confocal BPAE nuclei; every network is trained on raw frames of fields 1-3 and
tested on 4 raw frames of field 4 against its 50-frame average. Ours uses poisson-gaussian with
gain, offset and read noise from a photon-transfer fit on the 50 frames of field 4; beside it
Neighbor2Neighbor and IDDP (noisy frames only), a supervised network (clean targets) and
Noise2Noise (pairs of raw frames). Then the five FMD noisy/clean pairs (BPAE_B/G/R, fish,
mice; one raw frame each): the self-supervised methods trained on the five noisy frames, ours
with parameters estimated from each frame, supervised leave-one-out, Noise2Noise from the
confocal set's frame pairs (see :func:`fmd_pairs`).

Usage:
    python benchmarks/quality.py                 # all rows (about 3 h on 2 CPU cores)
    python benchmarks/quality.py --rows 9        # one noise model at a time (~15 min)
    python benchmarks/quality.py --methods ours,supervised   # a subset of the columns
    python benchmarks/quality.py --fmd-only      # only the real-data comparisons (~35 min)
    python benchmarks/quality.py --fmd-only --real pairs   # only the five FMD pairs
    python benchmarks/quality.py --tiny          # smoke test (seconds)
    python benchmarks/quality.py --full          # the paper's schedule, for a GPU
Writes benchmarks/results/quality.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage.io import imread

import scoredenoise as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, add_network_flags, finish, header, network
from _common import save as _save

ROWS = {
    1: ("gaussian", dict(sigma=25.0), "auto"),
    2: ("gaussian-correlated", dict(sigma=25.0), "auto"),
    3: ("gaussian-signal", dict(a=0.98, b=25.0), "auto"),
    5: ("gamma", dict(alpha=26.0), "auto"),
    7: ("poisson", dict(lam=0.2), 5.0),      # the paper's extra Gaussian noise, sigma = 5
    9: ("rayleigh", dict(sigma=0.3), 5.0),
    10: ("rayleigh-correlated", dict(sigma=0.3), 5.0),
    11: ("gamma+gaussian", dict(alpha=26.0, sigma=10.0), "auto"),
    13: ("poisson+gaussian", dict(lam=0.2, sigma=10.0), "auto"),
    15: ("rayleigh+gaussian", dict(rayleigh_sigma=0.3, sigma=10.0), "auto"),
}

#: the learned columns of the natural-image table, and the objective that trains each
METHODS = {"ours": "score", "neighbor2neighbor": "neighbor2neighbor", "iddp": "iddp",
           "supervised": "supervised"}


def psnr(x, ref, peak=255.0):
    return float(10 * np.log10(peak ** 2 / np.mean((np.asarray(x, np.float64) - ref) ** 2)))


def ssim(x, ref, peak=255.0):
    from skimage.metrics import structural_similarity
    return float(structural_similarity(np.asarray(x, np.float64), ref, data_range=peak))


def _need(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"benchmark data {path} not found: the benchmarks read the "
                                f"project's shared/data folder beside the repository")
    return path


def load_natural(n_train=None):
    _need(DATA / "natural")
    def read(folder):
        return [imread(p).astype(np.float32)
                for p in sorted((DATA / "natural" / folder).glob("*.png"))]

    train, test = read("BSD68"), read("Set12")
    return train[:n_train] if n_train else train, test


def classical(noisy):
    """NL-means with h chosen by scikit-image's self-supervised J-invariant calibration."""
    from skimage.restoration import calibrate_denoiser, denoise_nl_means
    scale = 255.0
    y = noisy / scale
    sig = float(np.std(y[1:, 1:] - y[:-1, 1:] - y[1:, :-1] + y[:-1, :-1]) / 2)
    grid = {"h": list(sig * np.array([0.4, 0.6, 0.8, 1.0, 1.3])), "sigma": [sig],
            "patch_size": [5], "patch_distance": [6], "fast_mode": [True]}
    den = calibrate_denoiser(y, denoise_nl_means, denoise_parameters=grid)
    return den(y) * scale


def train_kw(cfg):
    kw = dict(preset=cfg.preset, steps=cfg.steps, batch_size=cfg.batch, patch_size=cfg.patch,
              lr=cfg.lr, seed=0, device=cfg.device,
              conditioned=network(cfg))
    if cfg.sigma_a is not None:
        kw["sigma_a"] = tuple(cfg.sigma_a)
    return kw


def natural_rows(cfg, out):
    train_clean, test_clean = load_natural(cfg.n_train)
    if cfg.tiny:
        test_clean = [t[:64, :64] for t in test_clean[:2]]
    for row in cfg.rows:
        name, params, extra = ROWS[row]
        nm = sd.get_noise_model(name, **params)
        rng = np.random.default_rng(row)
        train_noisy = [nm.sample(c, rng).astype(np.float32) for c in train_clean]
        test_noisy = [nm.sample(c, rng).astype(np.float32) for c in test_clean]
        res = {"row": row, "noise": nm.to_dict()}
        models = {}
        for col in cfg.methods:
            t0 = time.perf_counter()
            objective = METHODS[col]
            kw = dict(train_kw(cfg), objective=objective)
            if objective == "score":
                kw["extra_noise"] = extra if cfg.extra_noise == "paper" else "auto"
            if objective == "supervised":
                kw["targets"] = train_clean
            models[col] = sd.train(train_noisy, **kw)
            res[f"{col}_train_s"] = time.perf_counter() - t0
        cols = {k: [] for k in ["noisy", "classical", *models]}
        ssims = {k: [] for k in cols}
        for y, x in zip(test_noisy, test_clean):
            outs = {"noisy": y, "classical": classical(y)}
            for col, m in models.items():
                outs[col] = sd.denoise(y, m, nm, device=cfg.device)
            for k, v in outs.items():
                cols[k].append(psnr(v, x))
                ssims[k].append(ssim(v, x))
        res.update({f"psnr_{k}": float(np.mean(v)) for k, v in cols.items()})
        res.update({f"ssim_{k}": float(np.mean(v)) for k, v in ssims.items()})
        ours = models.get("ours")
        if row == 1 and ours is not None:
            res.update(bf16_check(ours, test_noisy, test_clean, nm, cfg))
        out["natural"].append(res)
        print_row(res)
        save(cfg, out)


def bf16_check(model, noisy, clean, nm, cfg):
    """PSNR and time of bf16 autocast inference against fp32, same model."""
    r = {}
    for prec in ("fp32", "bf16"):
        t0 = time.perf_counter()
        vals = [psnr(sd.denoise(y, model, nm, precision=prec, device=cfg.device), x)
                for y, x in zip(noisy, clean)]
        r[f"{prec}_psnr"] = float(np.mean(vals))
        r[f"{prec}_seconds"] = time.perf_counter() - t0
    return {"precision": r}


def real_columns(models):
    """Columns of a real-data table: ours twice from one score, Algorithm 5 (the default
    solve) and the exact solve of the Poisson + read-noise likelihood (``exact=True``)."""
    return ["noisy", *models] + (["ours_exact"] if "ours" in models else [])


def real_output(name, y, models, cam, score, cfg):
    """Column ``name``'s result on ``y``, in data units (the solve returns the signal above
    the camera offset; the references include it). ``models`` maps a column to its model."""
    if name == "noisy":
        return y
    if name in ("ours", "ours_exact"):
        nm = cam.replace(exact=True) if name == "ours_exact" else cam
        return sd.denoise(y, models["ours"], nm, score=score)
    return sd.denoise(y, models[name], device=cfg.device)


def photon_transfer(stack):
    """gain and intercept of var = gain * mean + intercept over pixels (unclipped)."""
    m, v = stack.mean(0), stack.var(0, ddof=1)
    ok = (stack.max(0) < 255) & (stack.min(0) > 0)
    gain, icpt = np.polyfit(m[ok], v[ok], 1)
    return float(gain), float(icpt)


def fmd(cfg, out):
    root = _need(DATA / "fmd_confocal_bpae_b")
    fields = {}
    for fov in (1, 2, 3, 4):
        files = sorted((root / "raw" / str(fov)).glob("*.png"))
        stack = np.stack([imread(f) for f in files]).astype(np.float32)
        gt = imread(root / "gt" / str(fov) / "avg50.png").astype(np.float64)
        if cfg.tiny:
            stack, gt = stack[:, :96, :96], gt[:96, :96]
        fields[fov] = (stack, gt)
    n = 4
    train_noisy = [fields[f][0][:n] for f in (1, 2, 3)]
    train_pairs = [fields[f][0][n:2 * n] for f in (1, 2, 3)]
    train_clean = [np.broadcast_to(fields[f][1].astype(np.float32), (n,) + fields[f][1].shape)
                   for f in (1, 2, 3)]
    test_stack, test_gt = fields[4]
    gain, icpt = photon_transfer(fields[4][0])
    read_noise = 1.0  # ADU: dark-pixel variance minus quantisation (docs/benchmarks.md)
    offset = (read_noise ** 2 - icpt) / gain
    nm = sd.get_noise_model("poisson-gaussian", gain=gain, offset=offset, read_noise=read_noise)
    kw = dict(train_kw(cfg), axes="SYX")
    targets = {"supervised": train_clean, "noise2noise": train_pairs}
    models = {}
    for col in [*cfg.methods, "noise2noise"]:
        objective = METHODS.get(col, col)
        # the data's units: this table's figures, and its tiny run's crops (too small for
        # a photon map of their own)
        models[col] = sd.train(train_noisy, objective=objective, targets=targets.get(col),
                               units="data", **kw)
    res = {"noise_model": nm.to_dict(), "photon_transfer": {"gain": gain, "intercept": icpt}}
    columns = real_columns(models)
    scores = {}
    for name in columns:
        p, s = [], []
        for i, y in enumerate(test_stack[:n]):
            if name in ("ours", "ours_exact") and i not in scores:
                scores[i] = models["ours"].score(y, device=cfg.device)
            x = real_output(name, y, models, nm, scores.get(i), cfg)
            p.append(psnr(x, test_gt))
            s.append(ssim(x, test_gt))
        res[f"psnr_{name}"], res[f"ssim_{name}"] = float(np.mean(p)), float(np.mean(s))
    out["fmd"] = res
    print("\nFMD confocal BPAE_B field 4 (4 frames): " + " | ".join(
        f"{k} {res[f'psnr_{k}']:.2f} dB / {res[f'ssim_{k}']:.3f}" for k in columns))
    save(cfg, out)


def fmd_pairs(cfg, out):
    """The five FMD noisy/clean pairs (BPAE_B/G/R, fish, mice): one raw frame each.

    The self-supervised methods train one network each on the five noisy frames (the data they
    denoise, as users do); ours solves with poisson-gaussian parameters estimated from each
    frame alone (``estimate_noise``: no calibration exists for these). The bounds: supervised,
    leave-one-out (trained on the other four pairs); Noise2Noise, trained on raw-frame pairs
    of fmd_confocal_bpae_b fields 2-4 (these pairs hold one frame per scene; field 1 is the
    BPAE_B pair's field, left out).
    """
    import tifffile

    root = _need(DATA / "fmd_pairs")
    names = sorted(p.stem for p in (root / "noisy").glob("*.tif"))
    noisy = {n: tifffile.imread(root / "noisy" / f"{n}.tif").astype(np.float32) for n in names}
    clean = {n: tifffile.imread(root / "clean" / f"{n}.tif").astype(np.float64) for n in names}
    if cfg.tiny:
        noisy = {n: a[:96, :96] for n, a in noisy.items()}
        clean = {n: a[:96, :96] for n, a in clean.items()}
    kw = train_kw(cfg)
    models = {}  # method -> {name: model}
    for col in cfg.methods:
        objective = METHODS[col]
        if objective == "supervised":
            models[col] = {n: sd.train([noisy[o] for o in names if o != n], objective=objective,
                                       targets=[clean[o].astype(np.float32) for o in names
                                                if o != n], **kw) for n in names}
        else:
            m = sd.train([noisy[n] for n in names], objective=objective, **kw)
            models[col] = dict.fromkeys(names, m)
    conf = _need(DATA / "fmd_confocal_bpae_b")
    frames = [np.stack([imread(f) for f in sorted((conf / "raw" / str(fov)).glob("*.png"))[:8]])
              .astype(np.float32) for fov in (2, 3, 4)]
    if cfg.tiny:
        frames = [f[:, :96, :96] for f in frames]
    n2n = sd.train([f[:4] for f in frames], objective="noise2noise",
                   targets=[f[4:] for f in frames], **dict(kw, axes="SYX"))
    models["noise2noise"] = dict.fromkeys(names, n2n)
    columns = real_columns(models)
    res = {"images": {}}
    for n in names:
        y, gt = noisy[n], clean[n]
        r, cam, score = {}, None, None
        if "ours" in models:
            cam = sd.estimate_noise(y.astype(np.uint8)).noise_model
            r["noise_model"] = cam.to_dict()
            score = models["ours"][n].score(y, device=cfg.device)
        for name in columns:
            x = real_output(name, y, {k: v[n] for k, v in models.items()}, cam, score, cfg)
            r[f"psnr_{name}"], r[f"ssim_{name}"] = psnr(x, gt), ssim(x, gt)
        res["images"][n] = r
        print(f"FMD pair {n:<7}: " + " | ".join(
            f"{k} {r[f'psnr_{k}']:.2f} / {r[f'ssim_{k}']:.3f}" for k in columns), flush=True)
    for k in columns:
        for m in ("psnr", "ssim"):
            res[f"{m}_{k}"] = float(np.mean([r[f"{m}_{k}"] for r in res["images"].values()]))
    out["fmd_pairs"] = res
    print("FMD pairs, mean of 5: " + " | ".join(
        f"{k} {res[f'psnr_{k}']:.2f} dB / {res[f'ssim_{k}']:.3f}" for k in columns))
    save(cfg, out)


def print_header(cfg):
    cols = ["noisy", "classical", *cfg.methods]
    print("| row | noise model | " + " | ".join(cols) + " | ours - sup |")
    print("|---|---|" + "---|" * (len(cols) + 1))


def print_row(r):
    cols = [k[5:] for k in r if k.startswith("psnr_")]
    gap = (f"{r['psnr_ours'] - r['psnr_supervised']:+5.2f}"
           if "psnr_ours" in r and "psnr_supervised" in r else "-")
    print(f"| {r['row']:>2} | {r['noise']['name']:<18} | " +
          " | ".join(f"{r[f'psnr_{c}']:6.2f}" for c in cols) + f" | {gap} |", flush=True)


def save(cfg, out):
    _save(out, cfg.out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(map(str, ROWS)))
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"learned columns, from {', '.join(METHODS)}")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--preset", default="default")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate for every method (default: each objective's own, "
                        "1e-3; IDDP 2e-4 as in its paper)")
    p.add_argument("--sigma-a", type=float, nargs=2, default=None,
                   help="AR-DAE sigma_a: the conditioned network's training range, or the "
                        "unconditioned one's anneal (default: the library's)")
    add_network_flags(p)  # --unconditioned / --conditioned, for every row
    p.add_argument("--n-train", type=int, default=None, help="use only the first N BSD68 images")
    p.add_argument("--device", default="auto")
    p.add_argument("--extra-noise", choices=["paper", "auto"], default="auto",
                   help="auto (the library default): only the de-quantisation noise of lattice "
                        "data (sigma 5 for row 7, 0 elsewhere); paper: Gaussian sigma=5 added "
                        "in training for rows 7 and 9 (appendix B)")
    p.add_argument("--skip-fmd", action="store_true", help="no real-data (FMD) comparison")
    p.add_argument("--fmd-only", action="store_true", help="only the real-data (FMD) comparisons")
    p.add_argument("--real", default="confocal,pairs",
                   help="which real-data comparisons: confocal (BPAE_B field 4 against "
                        "photon transfer), pairs (the five FMD noisy/clean pairs)")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--full", action="store_true",
                   help="the paper's schedule (5000 steps, batch 32, 128 px, lr 1e-4, sigma_a "
                        "0.05 -> 1e-6), for a GPU")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality.json")
    cfg = p.parse_args(argv)
    cfg.rows = [] if cfg.fmd_only else [int(r) for r in cfg.rows.split(",")]
    if cfg.fmd_only and cfg.skip_fmd:
        p.error("--fmd-only and --skip-fmd exclude each other")
    cfg.methods = [m.strip() for m in cfg.methods.split(",") if m.strip()]
    cfg.real = [r.strip() for r in cfg.real.split(",") if r.strip()]
    if set(cfg.real) - {"confocal", "pairs"}:
        p.error(f"--real takes confocal and/or pairs, got {cfg.real}")
    bad = [r for r in cfg.rows if r not in ROWS] + [m for m in cfg.methods if m not in METHODS]
    if bad:
        p.error(f"unknown rows or methods {bad}; rows: {sorted(ROWS)}, methods: "
                f"{', '.join(METHODS)}")
    if cfg.full:
        cfg.steps, cfg.batch, cfg.patch, cfg.lr, cfg.sigma_a = 5000, 32, 128, 1e-4, (0.05, 1e-6)
        cfg.unconditioned = True
    if cfg.tiny:
        cfg.steps, cfg.batch, cfg.patch, cfg.preset, cfg.n_train = 4, 2, 32, "small", 3
    out = {**header(cfg), "natural": []}
    t0 = time.perf_counter()
    print_header(cfg)
    natural_rows(cfg, out)
    if not cfg.skip_fmd:
        if "confocal" in cfg.real:
            fmd(cfg, out)
        if "pairs" in cfg.real:
            fmd_pairs(cfg, out)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
