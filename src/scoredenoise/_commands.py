"""What each ``scoredenoise`` command does (:mod:`scoredenoise.cli` parses the command line
and calls these)."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

from ._progress import ProgressBar
from ._version import __version__
from .batch import denoise_files, make_client
from .demo import run_demo
from .estimate import NoiseToEstimate, estimate_noise
from .io import find_images, open_image, read_image, write_tiff
from .langevin import check_prior, sample_posterior, train_prior
from .model import load_model
from .noise import get_noise_model, list_noise_models
from .solve import provenance
from .train_config import TrainConfig
from .training import train
from .uncertainty import posterior_std


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


def _parse_params(items, option: str = "--param") -> dict:
    params = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{option} takes name=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k in params:
            raise ValueError(f"{option} {k} is given twice ({params[k]!r} and {v}); give "
                             f"each parameter once")
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            raise ValueError(f"{option} {k}: value {v!r} is not a number or JSON list") \
                from None
    return params


def _noise_models(noise: str, params: dict):
    """The noise model of ``--noise`` and ``--param`` (built here, at the edge: the engine
    gets models, not names and loose parameters); values given per channel (a list for a
    number, a list of kernels for a kernel) make one noise model per channel."""
    import numpy as np

    kinds = {p.name: p.kind for p in get_noise_model(noise).parameters()}
    own_ndim = {k: 2 if kinds.get(k) == "kernel" else 0 for k in params}
    per = {k: v for k, v in params.items() if np.ndim(v) == own_ndim[k] + 1}
    if not per:
        return get_noise_model(noise, **params)
    sizes = {len(v) for v in per.values()}
    if len(sizes) > 1:
        raise ValueError("--param values per channel must have one entry per channel, got "
                         + ", ".join(f"{k}: {len(v)}" for k, v in per.items()))
    n = sizes.pop()
    same = {k: v for k, v in params.items() if k not in per}
    return [get_noise_model(noise, **same, **{k: v[c] for k, v in per.items()})
            for c in range(n)]


def _denoise_options(est) -> str:
    """The ``denoise`` options for an estimate, or a list of them (one per channel)."""
    import numpy as np

    ests = est if isinstance(est, list) else [est]
    values = {k: [e.params[k] for e in ests] for k in ests[0].params}
    opts = []
    for k, v in values.items():
        if all(np.array_equal(v[0], w) for w in v[1:]):  # the same for every channel
            v = v[:1]
        one = v[0] if len(v) == 1 else v
        if np.ndim(one) == 0:
            opts.append(f"--param {k}={one:.6g}")
        elif np.ndim(v[0]) == 0:  # a number per channel
            opts.append(f"--param {k}='{json.dumps([float(f'{w:.6g}') for w in one])}'")
        else:  # a kernel, or a kernel per channel
            opts.append(f"--param {k}='{json.dumps(np.round(one, 5).tolist())}'")
    return f"--noise {ests[0].noise_model.name} " + " ".join(opts)


def _cmd_train(args) -> int:
    files = find_images(args.images)
    imgs = [read_image(f, lazy=True) for f in files]
    axes = args.axes or [im.axes for im in imgs]
    targets = None
    if args.targets:
        tfiles = find_images(args.targets)
        if len(tfiles) != len(files):
            raise ValueError(f"--targets gives {len(tfiles)} images for {len(files)} inputs; "
                             f"give one target per input, in the same order")
        targets = [read_image(f, lazy=True).data for f in tfiles]
    data = [im.data for im in imgs]
    fit = train
    if args.camera:  # a prior of camera data, in its variance-stabilised domain
        if args.objective != "prior":
            raise ValueError(f"--camera stabilises the clean images of a prior: use it with "
                             f"--objective prior, got {args.objective}")
        cam = get_noise_model("poisson-gaussian", **_parse_params(args.camera, "--camera"))
        fit = partial(train_prior, noise_model=cam)
    config = TrainConfig(
        objective=args.objective, dims=args.dims, preset=args.preset, steps=args.steps,
        patch_size=args.patch_size, batch_size=args.batch_size, lr=args.lr,
        val_fraction=args.val_fraction, augment=not args.no_augment,
        extra_noise=args.extra_noise if args.extra_noise == "auto" else float(args.extra_noise),
        conditioned=(False if args.unconditioned else True if args.conditioned else "auto"),
        precision=args.precision, seed=args.seed,
        ema=args.ema, units=args.units)
    bar = ProgressBar("train", args.quiet)
    model = fit(data, config=config, axes=axes, targets=targets, device=args.device,
                progress=bar, checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every, resume=args.resume)
    bar.close()
    model.meta["training_files"] = [str(f) for f in files]
    out = model.save(args.output)
    last = model.meta["history"][-1] if model.meta.get("history") else {}
    print(f"saved {out} ({model.info['parameters']} parameters, {model.meta['steps_done']} "
          f"steps, final loss {last.get('loss', float('nan')):.4f})")
    return 0


def _stem(src: Path) -> str:
    return src.name[:-len(".ome.tif")] if src.name.lower().endswith(".ome.tif") else src.stem


def _output_paths(files: list, outdir: Path, fmt: str = "tiff") -> list:
    """OUTDIR/<stem>_denoised.tif for each input, unique per input: where stems collide
    (a.tif, a.tiff, a.png; or one name in several folders) the extension, then the parent
    folder's name, join the stem."""
    ext = "zarr" if fmt == "zarr" else "tif"
    names = [[_stem(f), f"{_stem(f)}_{f.suffix.lstrip('.').lower()}",
              f"{f.parent.name}_{_stem(f)}_{f.suffix.lstrip('.').lower()}"] for f in files]
    chosen = []
    for i, options in enumerate(names):
        for level, name in enumerate(options):
            if sum(n[level] == name for n in names) == 1:
                break
        else:
            name = f"{options[-1]}_{i + 1}"
        chosen.append(name)
    # a name chosen at one level may still equal another file's at another level
    seen = set()
    for i, name in enumerate(chosen):
        if name.lower() in seen:
            chosen[i] = name = f"{name}_{i + 1}"
        seen.add(name.lower())
    return [outdir / f"{name}_denoised.{ext}" for name in chosen]


def _sigma_a_arg(text: str):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"--sigma-a must be 'auto' or a number > 0, got {text!r}")
    return value


def _cmd_denoise(args) -> int:
    import time

    model = load_model(args.model)
    params = _parse_params(args.param)
    if args.exact or args.first_order:
        params["exact"] = bool(args.exact)
    if args.estimate_noise:  # each file gets its own estimate; --param values are known
        if any(isinstance(v, list) for v in params.values()):
            raise ValueError("--estimate-noise: --param values are kept fixed, one for all "
                             "channels; drop the per-channel lists")
        noise = NoiseToEstimate(args.noise, params)
    else:
        noise = _noise_models(args.noise, params)
    files = find_images(args.images)
    outdir = Path(args.output)
    # results of an earlier run into the input folder are not inputs (a resume, or a second
    # run with --overwrite, would otherwise refuse the batch)
    earlier = {o.resolve() for o in _output_paths(files, outdir, args.format)}
    previous = [f for f in files if f.resolve() in earlier]
    files = [f for f in files if f.resolve() not in earlier]
    if previous:
        print(f"scoredenoise: {len(previous)} earlier result(s) among the inputs left out "
              f"({', '.join(f.name for f in previous[:3])}{', ...' if len(previous) > 3 else ''})",
              file=sys.stderr)
    if not files:
        raise ValueError("no inputs left: every image found is an earlier result")
    inputs = {f.resolve() for f in files}
    outputs = _output_paths(files, outdir, args.format)  # checked first
    for out in outputs:
        if out.resolve() in inputs:
            raise ValueError(f"refusing to overwrite the input {out}; choose another --output")
    rows, jobs = {}, []
    for f, out in zip(files, outputs):
        if out.exists() and not args.overwrite:
            rows[str(f)] = {"source": str(f), "output": str(out), "ok": False,
                            "error": f"{out} exists (use --overwrite)"}
            print(f"scoredenoise: failed: {f}: {rows[str(f)]['error']}", file=sys.stderr)
        else:
            jobs.append((f, out))
    kwargs = dict(noise_model=noise, axes=args.axes, format=args.format,
                  compression=args.compression, tile_size=args.tile_size,
                  dtype="input" if args.dtype == "input" else "float32",
                  resume=not args.no_resume, overwrite=args.overwrite, device=args.device,
                  precision=args.precision, tile=args.tile, units=args.units,
                  sigma_a=_sigma_a_arg(args.sigma_a), tta="auto" if args.tta is None else args.tta,
                  metadata={"version": __version__, "model": str(args.model)})
    if args.chunk:
        kwargs["chunks"] = _chunk_spec(args.chunk)

    def on_done(src, out, res):
        if isinstance(res, Exception):
            print(f"scoredenoise: failed: {src}: {type(res).__name__}: {res}", file=sys.stderr)
        else:
            print(f"{src} -> {out}")
            est = getattr(res, "noise_estimate", None) or (
                res.get("noise_estimate") if isinstance(res, dict) else None)
            for c, e in enumerate(est or []):
                head = f"  channel {c}: " if len(est) > 1 else "  estimated: "
                print(head + ", ".join(
                    f"{k} {e['noise_model']['params'][k]:.4g} +/- {e['stderr'][k]:.2g}"
                    for k in e["estimated"] if k in e["stderr"]))

    t0 = time.perf_counter()
    client = None
    if args.scheduler or args.workers:
        client = make_client(args.scheduler, args.workers)
        print(f"dask cluster: {len(client.scheduler_info()['workers'])} workers "
              f"({client.dashboard_link or client.scheduler.address})")
    try:
        if client is None:
            done = []
            for job in jobs:  # one bar per file, over its chunks
                bar = ProgressBar(Path(job[0]).name, args.quiet, unit="chunk")
                done += denoise_files([job], model, progress=bar, on_done=on_done, **kwargs)
                bar.close()
        else:
            done = denoise_files(jobs, model, client=client, on_done=on_done, **kwargs)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not args.scheduler:
                cluster.close()
    for r in done:
        rows[r["source"]] = r
    table = [rows[str(f)] for f in files]
    _print_summary(table, time.perf_counter() - t0)
    return 0 if all(r["ok"] for r in table) else 1


def _chunk_spec(text: str):
    """``--chunk 512`` (Y and X) or ``--chunk Z=32,Y=512,X=512``: a per-axis dict."""
    if "=" not in text:
        n = int(text)
        if n < 16:
            raise ValueError(f"--chunk must be at least 16 pixels, got {n}")
        return {"Y": n, "X": n}
    out = {}
    for item in text.split(","):
        k, v = item.split("=", 1)
        out[k.strip().upper()] = int(v)
    return out


def _print_summary(rows, seconds) -> None:
    n_ok = sum(r["ok"] for r in rows)
    print(f"\n{n_ok} of {len(rows)} files denoised in {seconds:.1f} s")
    w = max([len(Path(r["source"]).name) for r in rows] + [4])
    print(f"{'file':<{w}}  {'status':<7} {'chunks':>8} {'resumed':>8} {'seconds':>8}  output")
    for r in rows:
        status = "ok" if r["ok"] else "FAILED"
        print(f"{Path(r['source']).name:<{w}}  {status:<7} {r.get('chunks', '-'):>8} "
              f"{r.get('resumed', '-'):>8} "
              f"{(format(r['seconds'], '.1f') if 'seconds' in r else '-'):>8}  "
              f"{r['output'] if r['ok'] else r['error']}")


def _cmd_estimate_noise(args) -> int:
    known = _parse_params(args.param)
    extra = {}
    if args.kernel_shape:
        try:
            extra["kernel_shape"] = tuple(int(v) for v in args.kernel_shape.lower().split("x"))
        except ValueError:
            raise ValueError(f"--kernel-shape takes HxW, e.g. 3x3 or 1x3, got "
                             f"{args.kernel_shape!r}") from None
    files = find_images(args.images)
    results, failures = [], []
    for f in files:
        bar = ProgressBar(Path(f).name, args.quiet or args.json,
                   unit="frame" if args.photon_transfer else "plane")
        try:
            img = read_image(f, lazy=True)
            axes = args.axes or img.axes
            if args.photon_transfer:
                frames = axes.index(args.frames_axis.upper()) if args.frames_axis.upper() in \
                    axes else None
                if frames is None:
                    raise ValueError(f"--frames-axis {args.frames_axis} is not among the axes "
                                     f"{axes!r}; pass --axes or --frames-axis")
                est = estimate_noise(img.data, args.noise, axes=axes, frames_axis=frames,
                                     progress=bar, **extra, **known)
            else:
                est = estimate_noise(img.data, args.noise, axes=axes,
                                     correlation=args.correlation, progress=bar,
                                     **({} if args.max_pixels is None
                                        else {"max_pixels": args.max_pixels}), **extra,
                                     **known)
            if isinstance(est, list):  # one per channel
                results.append({"file": str(f), "channels": [e.to_dict() for e in est]})
            else:
                results.append({"file": str(f), **est.to_dict()})
            bar.close()
            if not args.json:
                print(f"{f}:")
                for c, e in enumerate(est if isinstance(est, list) else [est]):
                    if isinstance(est, list):
                        print(f"channel {c}:")
                    print(e.summary())
                print(f"  denoise with: {_denoise_options(est)}\n")
        except Exception as exc:  # noqa: BLE001 (one bad file must not stop the others)
            bar.close()
            failures.append((f, f"{type(exc).__name__}: {exc}"))
    if args.json:
        print(json.dumps(results, indent=2))
    for f, why in failures:
        print(f"scoredenoise: failed: {f}: {why}", file=sys.stderr)
    return 1 if failures else 0


def _cmd_posterior_std(args) -> int:
    import numpy as np

    model = load_model(args.model)
    if model.channels != 1:
        raise ValueError(f"posterior-std takes single-channel models so far; {args.model} has "
                         f"{model.channels} channels")
    params = _parse_params(args.param)
    files = find_images(args.images)
    outdir = Path(args.output)
    inputs = {f.resolve() for f in files}
    failures = 0
    for f in files:
        out = outdir / f"{_stem(f)}_posterior_std.tif"
        try:
            if out.resolve() in inputs:
                raise ValueError(f"refusing to overwrite the input {out}; choose another "
                                 f"--output")
            if out.exists() and not args.overwrite:
                raise FileExistsError(f"{out} exists (use --overwrite)")
            img = open_image(f, axes=args.axes)  # lazily: one plane in memory at a time
            axes, data = img.axes, img.data
            if not axes.endswith("YX") or "C" in axes:
                raise ValueError(f"posterior-std takes single-channel planes with Y and X "
                                 f"last; {f.name} has axes {axes!r} and shape {data.shape} "
                                 f"(give --axes, e.g. ZYX)")
            planes = data.reshape((-1,) + data.shape[-2:])
            if args.estimate_noise:
                nm = estimate_noise(data, args.noise, axes=axes, **params).noise_model
            else:
                nm = get_noise_model(args.noise, **params)
            # sigma_a chosen once a file, on its middle plane (as denoise does)
            mid = np.asarray(planes[len(planes) // 2], np.float32)
            sig = model.resolve_sigma_a(mid, _sigma_a_arg(args.sigma_a), nm,
                                        device=args.device, factor=False)  # (the map's)
            bar = ProgressBar(f.name, args.quiet, unit="plane")

            def maps(planes=planes, nm=nm, sig=sig, bar=bar):
                for i in range(len(planes)):
                    plane = np.asarray(planes[i], np.float32)
                    yield posterior_std(plane, model, nm, device=args.device, rng=args.seed,
                                        sigma_a=sig if model.conditioned else "auto")
                    bar(i + 1, len(planes))

            write_tiff(out, maps(), shape=data.shape, dtype=np.float32, axes=axes,
                       pixel_size=img.pixel_size, unit=img.unit,
                       metadata={"scoredenoise": provenance(
                           model, nm, sigma_a=sig, source=str(f), kind="posterior std",
                           model_source=str(args.model))})
            bar.close()
            print(f"{f} -> {out}")
        except (ValueError, FileExistsError, NotImplementedError) as exc:
            failures += 1
            print(f"scoredenoise: failed: {f}: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _cmd_sample_posterior(args) -> int:
    import numpy as np

    prior = load_model(args.prior)
    check_prior(prior)  # a wrong model fails before any file
    camera = prior.meta.get("stabilised_by")
    if camera is None and args.sigma is None:
        raise ValueError(f"--sigma (the Gaussian noise's std) is needed: {args.prior} is a "
                         f"prior of images as they are, not of a camera's stabilised ones")
    if camera is not None and args.sigma is not None:
        raise ValueError(f"{args.prior} is a prior for the camera {camera['params']}: its "
                         f"noise is the camera's; drop --sigma")
    files = find_images(args.images)
    outdir = Path(args.output)
    inputs = {f.resolve() for f in files}
    failures = 0
    for f in files:
        outs = {k: outdir / f"{_stem(f)}_{k}.tif" for k in ("samples", "spread")}
        try:
            if any(o.resolve() in inputs for o in outs.values()):
                raise ValueError(f"refusing to overwrite an input in {outdir}; choose another "
                                 f"--output")
            if any(o.exists() for o in outs.values()) and not args.overwrite:
                raise FileExistsError(f"{outs['samples']} or its spread exists (use "
                                      f"--overwrite)")
            img = read_image(f)
            y = np.asarray(img.data, np.float32)
            if y.ndim != 2:
                raise ValueError(f"sample-posterior takes single 2-D planes so far; {f.name} "
                                 f"has shape {y.shape}")
            bar = ProgressBar(f.name, args.quiet, unit="step")
            xs = sample_posterior(y, prior, sigma=args.sigma, n_samples=args.n,
                                  rng=args.seed, device=args.device,
                                  progress=bar)
            bar.close()
            outdir.mkdir(parents=True, exist_ok=True)
            md = {"kind": "posterior samples", "version": __version__,
                  "prior": str(args.prior), "sigma": args.sigma, "camera": camera,
                  "seed": args.seed, "source": str(f)}
            axes = img.axes if len(img.axes) == 2 else "YX"
            write_tiff(outs["samples"], xs, axes="S" + axes, pixel_size=img.pixel_size,
                       unit=img.unit, metadata={"scoredenoise": md})
            write_tiff(outs["spread"], xs.std(axis=0), axes=axes,
                       pixel_size=img.pixel_size, unit=img.unit,
                       metadata={"scoredenoise": {**md, "kind": "posterior samples' spread"}})
            print(f"{f} -> {outs['samples']}, {outs['spread']}")
        except (ValueError, FileExistsError) as exc:
            failures += 1
            print(f"scoredenoise: failed: {f}: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _cmd_demo(args) -> int:
    run_demo(Path(args.output), steps=args.steps, device=args.device, quiet=args.quiet)
    return 0
