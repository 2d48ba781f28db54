"""Interactive training defaults: PSNR against training time on the napari sample (the 4 bundled
FMD confocal frames of 256x256 and their 50-frame average), for a few preset x steps settings,
side by side in one run. What `scoredenoise.training.INTERACTIVE` (the plugin's defaults) is
chosen from.

The user's path: parameters from ``estimate_noise`` on the frames, ``train`` with the setting,
``denoise`` each frame (sigma_a chosen per image), PSNR against the average.

Usage:
    python benchmarks/interactive.py                       # about 12 minutes on 2 CPU cores
    python benchmarks/interactive.py --settings small:2000,default:1000
    python benchmarks/interactive.py --settings small:2000:data,small:2000:photons  # units
    python benchmarks/interactive.py --tiny                # smoke test
Writes benchmarks/results/interactive.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import scoredenoise as sd
from scoredenoise.demo import psnr, sample_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import ROOT, finish, header


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", default="small:500,small:1000,small:2000,default:500,"
                                         "default:1000",
                   help="comma-separated preset:steps[:units] (units: train's, default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "interactive.json")
    cfg = p.parse_args(argv)
    frames, gt = sample_data()
    gt = gt.astype(np.float64)
    settings = [(s.split(":") + ["auto"])[:3] for s in cfg.settings.split(",")]
    settings = [(preset, int(steps), units) for preset, steps, units in settings]
    patch = None
    if cfg.tiny:
        frames, gt, settings, patch = (frames[:, :64, :64], gt[:64, :64],
                                       [("small", 3, "auto")], 32)
    nm = sd.estimate_noise(frames, axes="SYX").noise_model
    noisy = float(np.mean([psnr(f, gt) for f in frames]))
    out = {**header(cfg), "noise_model": nm.to_dict(), "noisy_psnr": noisy, "rows": []}
    t0 = time.perf_counter()
    print(f"sample {frames.shape}, {nm.to_dict()}; noisy {noisy:.2f} dB")
    print("| preset | steps | units | training (s) | PSNR (dB) |")
    print("|---|---|---|---|---|")
    for preset, steps, units in settings:
        t1 = time.perf_counter()
        m = sd.train(frames, axes="SYX", preset=preset, steps=steps, seed=cfg.seed,
                     patch_size=patch, device=cfg.device, units=units)
        sec = time.perf_counter() - t1
        val = float(np.mean([psnr(sd.denoise(f, m, nm, device=cfg.device), gt)
                             for f in frames]))
        out["rows"].append({"preset": preset, "steps": steps, "units": m.units,
                            "train_seconds": sec, "psnr": val})
        print(f"| {preset} | {steps} | {m.units} | {sec:.0f} | {val:.2f} |", flush=True)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
