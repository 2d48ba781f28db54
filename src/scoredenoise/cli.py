"""Command line: ``scoredenoise noise-models``, ``train``, ``denoise``, ``estimate-noise``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .noise import get_noise_model, list_noise_models


def _cmd_noise_models(args) -> int:
    names = [args.name] if args.name else list_noise_models()
    if args.name:
        get_noise_model(args.name)  # clear error for unknown names
    infos = [type(get_noise_model(n)).describe() for n in names]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    for info in infos:
        row = f"Table 1 row {info['table1_row']}" if info["table1_row"] else "camera model"
        print(f"{info['name']}  ({row})")
        print(f"  {info['summary']}")
        print(f"  model:   {info['formula']}")
        print(f"  support: {info['support']}")
        print(f"  solver:  {info['solver']}")
        print(f"  no root: {info['no_root']}")
        for p in info["parameters"]:
            default = p["default"] if p["kind"] != "kernel" else "paper 3x3 (Eq. 30)"
            print(f"  --param {p['name']}=  default {default}; {p['unit']}; {p['range']}; "
                  f"{p['description']}")
        print()
    return 0


def _parse_params(items) -> dict:
    params = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--param takes name=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            raise ValueError(f"--param {k}: value {v!r} is not a number or JSON list") from None
    return params


class _Bar:
    """tqdm progress bar adapter for the engine's progress callbacks."""

    def __init__(self, desc, quiet=False):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, done, total, logs=None):
        if self.quiet:
            return None
        if self.bar is None:
            self.bar = self._tqdm(total=total, desc=self.desc, unit="step" if logs is not None
                                  else "tile", dynamic_ncols=True)
        self.bar.n = done
        if logs:
            post = {"loss": f"{logs['loss']:.4f}", "sigma_a": f"{logs['sigma_a']:.1e}"}
            if "val_loss" in logs:
                post["val"] = f"{logs['val_loss']:.4f}"
            self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _cmd_train(args) -> int:
    from .io import find_images, read_image
    from .training import train

    files = find_images(args.images)
    imgs = [read_image(f, lazy=True) for f in files]
    axes = args.axes or [im.axes for im in imgs]
    bar = _Bar("train", args.quiet)
    model = train([im.data for im in imgs], axes=axes, dims=args.dims, preset=args.preset,
                  steps=args.steps, patch_size=args.patch_size, batch_size=args.batch_size,
                  lr=args.lr, val_fraction=args.val_fraction, augment=not args.no_augment,
                  extra_noise=(args.extra_noise if args.extra_noise == "auto"
                               else float(args.extra_noise)), device=args.device, precision=args.precision,
                  seed=args.seed, progress=bar, checkpoint=args.checkpoint,
                  checkpoint_every=args.checkpoint_every, resume=args.resume)
    bar.close()
    model.meta["training_files"] = [str(f) for f in files]
    out = model.save(args.output)
    last = model.meta["history"][-1] if model.meta.get("history") else {}
    print(f"saved {out} ({model.info['parameters']} parameters, {model.meta['steps_done']} "
          f"steps, final loss {last.get('loss', float('nan')):.4f})")
    return 0


def _output_path(src: Path, outdir: Path, inputs: set) -> Path:
    out = outdir / f"{src.stem}_denoised.tif"
    if out.resolve() in inputs:
        raise ValueError(f"refusing to overwrite the input {out}; choose another --output")
    return out


def _cmd_denoise(args) -> int:
    import numpy as np

    from .api import denoise, effective_noise_model, resolve_noise_model
    from .io import find_images, read_image, write_tiff
    from .model import load_model

    model = load_model(args.model)
    nm = resolve_noise_model(args.noise, **_parse_params(args.param)) \
        if model.kind == "score" else None
    files = find_images(args.images)
    inputs = {f.resolve() for f in files}
    outdir = Path(args.output)
    failures = []
    outputs = [_output_path(f, outdir, inputs) for f in files]  # all checked before any work
    for f, out in zip(files, outputs):
        if out.exists() and not args.overwrite:
            failures.append((f, f"{out} exists (use --overwrite)"))
            continue
        try:
            img = read_image(f)
            axes = args.axes or img.axes
            bar = _Bar(f.name, args.quiet)
            x = denoise(np.asarray(img.data), model, nm, axes=axes, device=args.device,
                        precision=args.precision, tile=args.tile, progress=bar)
            bar.close()
            x = _cast(x, args.dtype, img.dtype)
            md = {"scoredenoise": {
                "version": __version__, "source": str(f), "model": str(args.model),
                "noise_model": (effective_noise_model(model, nm).to_dict() if nm else None),
                "model_kind": model.kind}}
            write_tiff(out, x, axes=axes, pixel_size=img.pixel_size, unit=img.unit,
                       metadata=md)
            print(f"{f} -> {out}")
        except Exception as exc:  # one bad file must not stop the batch
            failures.append((f, f"{type(exc).__name__}: {exc}"))
    for f, why in failures:
        print(f"scoredenoise: failed: {f}: {why}", file=sys.stderr)
    return 1 if failures else 0


def _cmd_estimate_noise(args) -> int:
    from .estimate import estimate_noise
    from .io import find_images, read_image

    known = _parse_params(args.param)
    files = find_images(args.images)
    results, failures = [], []
    for f in files:
        try:
            img = read_image(f, lazy=True)
            axes = args.axes or img.axes
            if args.photon_transfer:
                frames = axes.index(args.frames_axis.upper()) if args.frames_axis.upper() in \
                    axes else None
                if frames is None:
                    raise ValueError(f"--frames-axis {args.frames_axis} is not among the axes "
                                     f"{axes!r}; pass --axes or --frames-axis")
                est = estimate_noise(img.data, args.noise, frames_axis=frames, **known)
            else:
                est = estimate_noise(img.data, args.noise, axes=axes, **known)
            results.append({"file": str(f), **est.to_dict()})
            if not args.json:
                print(f"{f}:")
                print(est.summary())
                cli = " ".join(f"--param {k}={v:.6g}" for k, v in est.params.items()
                               if not isinstance(v, list))
                print(f"  denoise with: --noise {est.noise_model.name} {cli}\n")
        except Exception as exc:  # one bad file must not stop the others
            failures.append((f, f"{type(exc).__name__}: {exc}"))
    if args.json:
        print(json.dumps(results, indent=2))
    for f, why in failures:
        print(f"scoredenoise: failed: {f}: {why}", file=sys.stderr)
    return 1 if failures else 0


def _cast(x, choice: str, input_dtype):
    import numpy as np

    if choice == "float32":
        return x.astype(np.float32, copy=False)
    dt = np.dtype(input_dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(x), info.min, info.max).astype(dt)
    return x.astype(dt)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.output), steps=args.steps, device=args.device, quiet=args.quiet)
    return 0


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
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="train a score model on noisy images",
                       description="Train a score network (AR-DAE) on noisy images only.")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders")
    p.add_argument("-o", "--output", required=True, help="model file to write (.sdmodel)")
    p.add_argument("--dims", type=int, default=2, choices=[2, 3], help="2D or 3D network")
    p.add_argument("--preset", default="default", choices=["small", "default", "large"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--patch-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-fraction", type=float, default=0.0)
    p.add_argument("--extra-noise", default="auto",
                   help="std (data units) of extra Gaussian noise in training, removed at "
                        "denoising; 'auto' (default): the quantisation step of integer data")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint", help="checkpoint file, written every --checkpoint-every")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", help="continue from this checkpoint")
    common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("denoise", help="denoise images with a model and a noise model",
                       description="Denoise images; writes OUTDIR/<name>_denoised.tif with the "
                                   "noise model in its metadata. Inputs are never overwritten.")
    p.add_argument("images", nargs="+", help="TIFF/PNG files or folders")
    p.add_argument("-m", "--model", required=True, help="model file from 'train'")
    p.add_argument("--noise", default="gaussian", help="noise model (see 'noise-models')")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="noise-model parameter, repeatable, e.g. --param gain=2.1")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--dtype", default="float32", choices=["float32", "input"],
                   help="float32 (default) or the input's dtype (rounded and clipped)")
    p.add_argument("--tile", type=int, default=512, help="tile size for the network")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    common(p)
    p.set_defaults(func=_cmd_denoise)

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
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_estimate_noise)

    p = sub.add_parser("demo", help="train and denoise on the bundled real fluorescence data",
                       description="Train on bundled FMD confocal frames, denoise with the "
                                   "poisson-gaussian model, write a TIFF and a PNG comparison, "
                                   "print PSNR against the 50-frame average.")
    p.add_argument("-o", "--output", default="scoredenoise-demo", help="output folder")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"scoredenoise: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
