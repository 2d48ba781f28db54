"""What every benchmark script shares: the run's header (settings, machine, date), the data
check, and writing the JSON result."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


#: the test frames of FMD field 4 (``--fmd-frames``): the first four, or four at the middle of
#: the 50 whose average is the reference. The specimen drifts over the 50 frames (field 4's
#: mean brightness rises 11 %): the average differs from the signal of frames 0-3 by about
#: 2.5 ADU^2 of MSE, and from that of frames 23-26 by nothing measurable (docs/benchmarks.md)
FMD_FRAMES = {"first": (0, 1, 2, 3), "middle": (23, 24, 25, 26)}


def add_fmd_frames_flag(p) -> None:
    p.add_argument("--fmd-frames", choices=sorted(FMD_FRAMES), default="first",
                   help="test frames of FMD field 4: 0-3 (default) or 23-26, whose signal "
                        "the 50-frame average matches (the specimen drifts)")


def fmd_frames(field: int, picks) -> np.ndarray:
    """Raw frames ``picks`` of FMD confocal field ``field``, stacked (uint8)."""
    from skimage.io import imread

    paths = sorted((need(DATA / "fmd_confocal_bpae_b") / "raw" / str(field)).glob("*.png"))
    return np.stack([imread(paths[i]) for i in picks])


def fmd_average(field: int) -> np.ndarray:
    """The 50-frame average of FMD confocal field ``field`` (its ground truth), float64."""
    from skimage.io import imread

    path = need(DATA / "fmd_confocal_bpae_b") / "gt" / str(field) / "avg50.png"
    return imread(path).astype(np.float64)


def need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"benchmark data {path} not found: the benchmarks read the "
                                f"project's shared/data folder beside the repository")
    return path


def header(cfg) -> dict:
    """The settings, the machine and the date, at the top of every result file."""
    return {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
            "machine": {"cpu": platform.processor() or platform.machine(),
                        "threads": torch.get_num_threads(), "torch": torch.__version__,
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                        else None},
            "date": time.strftime("%Y-%m-%d")}


def add_network_flags(p) -> None:
    """``--unconditioned`` / ``--conditioned``: which network ``train`` builds; neither: the
    library's choice by the data (``conditioned="auto"``). Read back with :func:`network`."""
    net = p.add_mutually_exclusive_group()
    net.add_argument("--unconditioned", action="store_true",
                     help="the paper's network (sigma_a annealed); default: the library's "
                          "choice by the data (conditioned='auto')")
    net.add_argument("--conditioned", action="store_true",
                     help="the sigma-conditioned network")


def network(cfg):
    """``train``'s ``conditioned=`` from :func:`add_network_flags`' flags."""
    return False if cfg.unconditioned else True if cfg.conditioned else "auto"


def save(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))


def finish(out: dict, path: Path, t0: float) -> dict:
    """Record the total time, write the JSON, say where."""
    out["total_seconds"] = time.perf_counter() - t0
    save(out, path)
    print(f"\ntotal {out['total_seconds'] / 60:.1f} min; wrote {path}")
    return out
