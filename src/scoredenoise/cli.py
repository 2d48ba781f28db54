"""Command line: ``scoredenoise noise-models``, ``train``, ``denoise``, ``posterior-std``,
``sample-posterior``, ``estimate-noise``."""

from __future__ import annotations

import argparse
import sys

from ._commands import (  # noqa: F401 (_parse_params, _noise_models: their old home)
    _cmd_demo,
    _cmd_denoise,
    _cmd_estimate_noise,
    _cmd_noise_models,
    _cmd_posterior_std,
    _cmd_sample_posterior,
    _cmd_train,
    _noise_models,
    _parse_params,
)
from ._version import __version__
from .estimate import MAX_PIXELS
from .io import PLANE_CHUNK, Z_PLANE_CHUNK
from .noise import list_noise_models
from .objectives import OBJECTIVES
from .training import TRAIN_STEPS as _TRAIN_STEPS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scoredenoise",
        description="Self-supervised score-function denoising (Xie et al. 2023).")
    parser.add_argument("--version", action="version", version=f"scoredenoise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("noise-models", help="list the registered noise models",
                       description="List the noise models: name, parameters with units, "
                                   "defaults and ranges, formula and solver.")
    p.add_argument("name", nargs="?", help="show only this model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_noise_models)

    def common(p):
        p.add_argument("--axes", help="axes of the images, letters from TCZYXS (default: from "
                                      "the file's metadata)")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
        p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"],
                       help="autocast precision of the network (default fp32; auto: bf16 "
                            "where the device computes it natively, faster but 0.3-1.3 dB "
                            "worse in training, docs/training.md)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="train a score model on noisy images",
                       description="Train a score network (AR-DAE) on noisy images only.")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders")
    p.add_argument("-o", "--output", required=True, help="model file to write (.sdmodel)")
    p.add_argument("--objective", default="score", choices=list(OBJECTIVES),
                   help="score (the method, default; any noise model at denoising time), "
                        "neighbor2neighbor or iddp (related methods, noisy images only), "
                        "supervised or noise2noise (need --targets)")
    p.add_argument("--targets", nargs="+", help="clean images (supervised) or second noisy "
                                                "frames (noise2noise), one per input")
    p.add_argument("--camera", action="append", metavar="NAME=VALUE",
                   help="with --objective prior: the poisson-gaussian camera (gain, offset, "
                        "read_noise; repeatable, e.g. --camera gain=3.8) whose noisy images "
                        "the prior will sample: it is trained on the variance-stabilised "
                        "clean images (docs/uncertainty.md)")
    p.add_argument("--dims", type=int, default=2, choices=[2, 3], help="2D or 3D network")
    p.add_argument("--preset", default=None, choices=["small", "default", "large"],
                   help="network size (default: small for photon-starved data, whose score "
                        "network is sigma-conditioned, else default)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"training steps (default by preset: {4 * _TRAIN_STEPS} small, "
                        f"{_TRAIN_STEPS} default and large; about 4 minutes either way on a "
                        f"fast 2-core CPU)")
    p.add_argument("--patch-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float,
                   help="learning rate (default: the objective's, 1e-3; 2e-4 for iddp)")
    p.add_argument("--val-fraction", type=float, default=0.0)
    p.add_argument("--extra-noise", default="auto",
                   help="std (data units) of extra Gaussian noise in training, removed at "
                        "denoising; 'auto' (default): the quantisation step of integer data, "
                        "at least half a photon step (read noise included) for photon counts")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint", help="checkpoint file, written every --checkpoint-every")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", help="continue from this checkpoint")
    p.add_argument("--units", choices=["auto", "data", "photons"], default="auto",
                   help="photons: each image in its own photo-electrons by its own noise "
                        "estimate (the score objective only); data: one normalisation for all "
                        "images; auto (default): photons for photon-starved counts on a "
                        "sigma-conditioned network, else data")
    p.add_argument("--ema", type=float,
                   help="decay per step of a moving average of the weights, delivered as the "
                        "model (e.g. 0.99); default: the last weights")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--conditioned", action="store_true",
                     help="a sigma-conditioned network evaluated where SURE is lowest for "
                          "each image (default for photon-starved data, below 6 "
                          "photo-electrons a pixel)")
    net.add_argument("--unconditioned", action="store_true",
                     help="the paper's network: sigma_a annealed 0.05 -> 0.02 and fixed "
                          "(default for brighter data and noise that is not photon counts)")
    common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("denoise", help="denoise images with a model and a noise model",
                       description="Denoise images; writes OUTDIR/<name>_denoised.tif with the "
                                   "noise model in its metadata. Inputs are never overwritten.")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders")
    p.add_argument("-m", "--model", required=True, help="model file from 'train'")
    p.add_argument("--noise", default="gaussian", help="noise model (see 'noise-models')")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="noise-model parameter, repeatable, e.g. --param gain=2.1; a list "
                        "gives one value per channel, e.g. --param gain=[2.1,3.4]")
    p.add_argument("--estimate-noise", action="store_true",
                   help="estimate the --noise model's parameters from each file (each "
                        "channel) before denoising it, as 'estimate-noise' does; --param "
                        "values are kept fixed")
    solver = p.add_mutually_exclusive_group()
    solver.add_argument("--exact", action="store_true",
                        help="poisson-gaussian, poisson+gaussian: always solve the exact "
                             "likelihood equation (default: wherever the read noise is below "
                             "3 photon steps, where the paper's Algorithm 5 is poor)")
    solver.add_argument("--first-order", action="store_true",
                        help="poisson-gaussian, poisson+gaussian: always solve with the "
                             "paper's first-order Algorithm 5")
    p.add_argument("--units", default="input", choices=["input", "signal"],
                   help="the result in the input's units, comparable with the raw data "
                        "(default; a camera model's offset included), or the signal above "
                        "the camera offset; recorded in the output's metadata")
    p.add_argument("--sigma-a", default="auto",
                   help="where a sigma-conditioned score network is evaluated (normalised "
                        "units): auto (default) chooses it for each file by Stein's unbiased "
                        "risk estimate under its noise model; recorded in the metadata")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average the network's output over the 8 rotations and flips "
                        "(test-time augmentation): 8x the network's time, +0.1 to +0.3 dB "
                        "on real data (docs/benchmarks.md); default: on for networks small "
                        "enough that it costs at most 1.5 passes of the default network (the "
                        "small one trained for photon-starved data), off for others; "
                        "recorded in the metadata")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--dtype", default="float32", choices=["float32", "input"],
                   help="float32 (default) or the input's dtype (rounded and clipped)")
    p.add_argument("--format", default="tiff", choices=["tiff", "zarr"],
                   help="output format: TIFF (BigTIFF when large; default) or zarr")
    p.add_argument("--compression", help="TIFF: zlib, zstd, lzma...; zarr: zstd, blosc, gzip")
    p.add_argument("--tile-size", type=int, help="write a tiled TIFF with these tiles")
    p.add_argument("--chunk", help="chunk size streamed through the network: N for Y and X "
                                   f"(default {PLANE_CHUNK}, {Z_PLANE_CHUNK} with a Z axis), or "
                                   "e.g. Z=32,Y=256,X=256")
    p.add_argument("--no-resume", action="store_true",
                   help="start over instead of resuming an interrupted run's finished chunks")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size for the network (default: 4096-pixel strips streamed in "
                        "bands of rows for 2-D models on the CPU, else 512)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--workers", type=int,
                   help="run the files on a local dask cluster of N worker processes")
    p.add_argument("--scheduler", help="run the files on this dask.distributed scheduler "
                                       "(address tcp://host:8786 or a scheduler file)")
    common(p)
    p.set_defaults(func=_cmd_denoise)

    p = sub.add_parser("posterior-std", help="per-pixel posterior standard deviation maps",
                       description="Write OUTDIR/<name>_posterior_std.tif: how far the "
                                   "denoised image may be from the truth at each pixel "
                                   "(second-order Tweedie from the model's score; "
                                   "docs/uncertainty.md). Every noise model, correlated ones "
                                   "included (their kernel by --param kernel=[[...]] or "
                                   "--estimate-noise). Single-channel images, streamed plane "
                                   "by plane (one plane in memory at a time).")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders")
    p.add_argument("-m", "--model", required=True, help="model file from 'train'")
    p.add_argument("--noise", default="gaussian", choices=list_noise_models(),
                   help="noise model")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="noise-model parameter, repeatable, e.g. --param gain=2.1")
    p.add_argument("--estimate-noise", action="store_true",
                   help="estimate the --noise model's parameters from each file")
    p.add_argument("--sigma-a", default="auto",
                   help="where a sigma-conditioned network is evaluated: auto (chosen on "
                        "the file's middle plane, as denoise does) or a number")
    p.add_argument("--seed", type=int, default=0, help="seed of the random probes")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--axes", help="axes of the images, letters from TZYX (default: from the "
                                  "file's metadata)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_posterior_std)

    p = sub.add_parser("sample-posterior", help="stochastic denoising: samples of the "
                                                "clean image",
                       description="Write OUTDIR/<name>_samples.tif (N samples of the clean "
                                   "image given the noisy one: Gaussian noise of std --sigma, "
                                   "or a camera's noise through its variance-stabilising "
                                   "transform; annealed Langevin dynamics, Kawar et al. 2021) "
                                   "and <name>_spread.tif (their per-pixel std). Needs a prior "
                                   "trained on clean images: 'train --objective prior' "
                                   "(with --camera for camera data).")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders (2-D planes)")
    p.add_argument("-p", "--prior", required=True,
                   help="prior model file from 'train --objective prior' on clean images")
    p.add_argument("--sigma", type=float,
                   help="std of the Gaussian noise, data units (not with a camera prior, "
                        "'train --objective prior --camera ...', whose camera sets the noise)")
    p.add_argument("-n", type=int, default=4, help="samples per image (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_sample_posterior)

    p = sub.add_parser("estimate-noise", help="estimate noise-model parameters from images",
                       description="Estimate the parameters of a noise model from each noisy "
                                   "image (single-image noise level function), or from "
                                   "repeated frames of a static scene (--photon-transfer). "
                                   "Prints each parameter with its standard error and the "
                                   "--param options for 'denoise'.")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders")
    p.add_argument("--noise", default="poisson-gaussian",
                   help="noise model whose parameters to estimate (default poisson-gaussian)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a parameter known beforehand (kept fixed), e.g. --param offset=100")
    p.add_argument("--axes", help="axes of the images, letters from TCZYXS (default: from "
                                  "the file's metadata)")
    p.add_argument("--photon-transfer", action="store_true",
                   help="the file holds repeated frames of a static scene: fit temporal "
                        "variance against temporal mean")
    p.add_argument("--frames-axis", default="T",
                   help="axis letter of the repeated frames for --photon-transfer (default T)")
    p.add_argument("--correlation", choices=["auto", "none"], default="auto",
                   help="noise correlation between neighbouring pixels: 'auto' measures it "
                        "and corrects for it where significant; 'none': the noise is known "
                        "to be white (e.g. a camera; fine texture can pass for correlation)")
    p.add_argument("--max-pixels", type=int,
                   help="measure at most this many pixels of a file (evenly spaced planes, "
                        f"tiles of a larger plane; default {MAX_PIXELS})")
    p.add_argument("--kernel-shape", metavar="HxW",
                   help="shape of the correlation kernel estimated for a correlated model "
                        "(default: its kernel's, 3x3), e.g. 5x5 or 1x3 (along X)")
    p.add_argument("--json", action="store_true", help="machine-readable output (no "
                                                        "progress bars)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_estimate_noise)

    p = sub.add_parser("demo", help="train and denoise on the bundled real fluorescence data",
                       description="Train on bundled FMD confocal frames, denoise with the "
                                   "poisson-gaussian model, write a TIFF and a PNG comparison, "
                                   "print PSNR against the 50-frame average.")
    p.add_argument("-o", "--output", default="scoredenoise-demo", help="output folder")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the library's, by the network chosen)")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError, ImportError) as exc:
        print(f"scoredenoise: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
