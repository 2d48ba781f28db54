"""Peak memory and time of the posterior std map of one large plane (issue 24): the whole
plane at once (``tile=None``) against window by window (``posterior_std``'s default
``tile=1024``), each in a fresh process (peak resident memory from the kernel), and whether
the two maps are equal.

The network is the library's default preset, sigma-conditioned, untrained (its cost and
memory are those of a trained one), on a synthetic photon-count plane with the FMD camera's
parameters (gain 3.8 ADU/e-, read noise 1); the map under ``poisson-gaussian``.

Usage:
    python benchmarks/uncertainty_memory.py              # 2048 x 2048, about 6 minutes
    python benchmarks/uncertainty_memory.py --size 4096
    python benchmarks/uncertainty_memory.py --tiny       # smoke test
Writes benchmarks/results/uncertainty_memory.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import ROOT, finish, header


def child(size: int, tile: str, out: str) -> None:
    """One map in this process; prints its time and peak resident memory as JSON."""
    import resource

    import torch

    import scoredenoise as sd
    from scoredenoise.network import build_network

    torch.manual_seed(0)
    model = sd.ScoreModel(build_network("default", sigma_input=True).eval(), offset=[3.5],
                          scale=[100.0], axes="YX", meta={"sigma_a_default": 0.04})
    rng = np.random.default_rng(0)
    y = (rng.poisson(20, size=(size, size)) * 3.8 + 3.5 +
         rng.normal(0, 1, (size, size))).astype(np.float32)
    cam = sd.get_noise_model("poisson-gaussian", gain=3.8, offset=3.5, read_noise=1.0)
    t0 = time.perf_counter()
    std = sd.posterior_std(y, model, cam, sigma_a=0.04, rng=0,
                           tile=None if tile == "none" else int(tile))
    sec = time.perf_counter() - t0
    np.save(out, std)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": sec, "peak_mb": peak_mb, "plane_mb": y.nbytes / 2 ** 20}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--child", nargs=3, metavar=("SIZE", "TILE", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "uncertainty_memory.json")
    cfg = p.parse_args(argv)
    if cfg.child:
        return child(int(cfg.child[0]), cfg.child[1], cfg.child[2])
    if cfg.tiny:
        cfg.size = 160
    t0 = time.perf_counter()
    out = {**header(cfg), "runs": {}}
    tiles = ("none", "64") if cfg.tiny else ("none", "1024")
    with tempfile.TemporaryDirectory() as tmp:
        maps = {}
        for tile in tiles:
            path = str(Path(tmp) / f"{tile}.npy")
            res = subprocess.run([sys.executable, __file__, "--child", str(cfg.size), tile,
                                  path], capture_output=True, text=True, check=True)
            out["runs"][tile] = json.loads(res.stdout.strip().splitlines()[-1])
            maps[tile] = np.load(path)
        a, b = (maps[t] for t in tiles)
        out["max_abs_difference"] = float(np.abs(a - b).max())
    print(f"| {cfg.size} x {cfg.size} plane | seconds | peak resident memory (MB) |")
    print("|---|---|---|")
    for tile, r in out["runs"].items():
        name = "whole plane (tile=None)" if tile == "none" else f"window by window (tile={tile})"
        print(f"| {name} | {r['seconds']:.1f} | {r['peak_mb']:.0f} |")
    print(f"largest difference between the two maps: {out['max_abs_difference']:.3g}")
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
