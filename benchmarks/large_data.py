"""Large-data benchmark: seams, memory, throughput and the distributed path, side by side.

1. seams: chunked (512-pixel chunks streamed to disk) against one whole-image pass on a
   2048x2048 real image (a 4x4 mosaic of raw FMD confocal frames, fields 1-4, frames 1-4;
   reference: the mosaic of their 50-frame averages), with a score model trained briefly on
   FMD frames. Targets: max |difference| <= 1e-3 of the data range, |PSNR difference| < 0.01 dB.
2. memory: peak resident memory (RSS) of a fresh process denoising a 256 MB and a 1 GB uint16
   TIFF stack (1024x1024 frames made from the FMD 50-frame averages with fresh
   Poisson-Gaussian noise, written page by page) into a TIFF, with the small network preset.
   Targets: at most 1.5 GB, at most 1.2x between the sizes.
3. throughput: FLOP/s of the default network (its FLOPs per pixel x pixels per second) over
   the peak of a 3x3 convolution (the fastest of 64/128 channels at 128^2/256^2,
   channels-last) measured in the same run at the same precision, fp32 and bf16: chunked
   streaming to a file (read, network, solve, write) with 2048 (the default), 1024 and 512
   pixel chunks, the network alone (row-streamed on the CPU), the network in 512-pixel tiles
   with halos (the previous pass), and one whole-image call. Target: chunked >= 60 % of the
   peak and >= the whole-image pass. On a GPU the same figures are added for CUDA.
4. distributed: a LocalCluster of 2 workers over 8 files against the serial run: identical
   outputs, and the wall times.

Usage:
    python benchmarks/large_data.py                      # all parts (~20 min on 2 CPU cores)
    python benchmarks/large_data.py --parts throughput   # one part
    python benchmarks/large_data.py --tiny               # smoke test (seconds)
Writes benchmarks/results/large_data.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.io import imread

import scoredenoise as sd
from scoredenoise._device import autocast
from scoredenoise.network import build_network, network_info

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common module
from _common import DATA, ROOT, finish, header, need

FMD = DATA / "fmd_confocal_bpae_b"


def _frame(field: int, i: int) -> np.ndarray:
    return imread(sorted((need(FMD) / "raw" / str(field)).glob("*.png"))[i])


def _gt(field: int) -> np.ndarray:
    return imread(FMD / "gt" / str(field) / "avg50.png").astype(np.float64)


def psnr(x, ref, peak=255.0):
    return float(10 * np.log10(peak ** 2 / np.mean((np.asarray(x, np.float64) - ref) ** 2)))


def _fmd_camera():
    """Poisson-Gaussian parameters of the FMD frames (photon transfer on field 1)."""
    stack = np.stack([_frame(1, i) for i in range(50)])
    return sd.estimate_noise(stack, frames_axis=0).noise_model


def part_seams(cfg, out, tmp):
    n = 2 if cfg.tiny else 4
    tiles = [[_frame(f, i) for i in range(n)] for f in range(1, n + 1)]
    noisy = np.block(tiles).astype(np.float32)
    gt = np.block([[_gt(f)] * n for f in range(1, n + 1)])
    if cfg.tiny:
        noisy, gt = noisy[:256, :256], gt[:256, :256]
    train = [np.stack([_frame(f, i) for i in range(4, 8)]).astype(np.float32) for f in (1, 2)]
    model = sd.train(train, axes="SYX", preset=cfg.preset, steps=cfg.steps, batch_size=8,
                     patch_size=64, seed=0, device=cfg.device)
    cam = _fmd_camera()
    t0 = time.perf_counter()
    whole = sd.denoise(noisy, model, cam, tile=max(noisy.shape), device=cfg.device)
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = sd.denoise_to_file(noisy, tmp / "seams.zarr", model, cam, axes="YX",
                           chunks={"Y": cfg.chunk, "X": cfg.chunk}, device=cfg.device)
    t_chunk = time.perf_counter() - t0
    chunked = sd.open_image(r.path).data.compute()
    rng = float(np.ptp(noisy))
    res = {"shape": list(noisy.shape), "chunk": cfg.chunk, "chunks": r.chunks_total,
           "max_abs_diff": float(np.abs(chunked - whole).max()), "data_range": rng,
           "psnr_whole": psnr(whole, gt), "psnr_chunked": psnr(chunked, gt),
           "psnr_noisy": psnr(noisy, gt), "seconds_whole": t_whole,
           "seconds_chunked": t_chunk}
    res["max_abs_diff_over_range"] = res["max_abs_diff"] / rng
    res["psnr_difference_db"] = res["psnr_chunked"] - res["psnr_whole"]
    out["seams"] = res
    print(f"\n| image | chunks | max abs diff / range | PSNR whole | PSNR chunked | "
          f"difference |\n|---|---|---|---|---|---|\n| {noisy.shape[0]}x{noisy.shape[1]} FMD "
          f"mosaic (noisy {res['psnr_noisy']:.2f} dB) | {r.chunks_total} of {cfg.chunk}^2 | "
          f"{res['max_abs_diff_over_range']:.1e} | {res['psnr_whole']:.3f} dB | "
          f"{res['psnr_chunked']:.3f} dB | {res['psnr_difference_db']:+.4f} dB |", flush=True)


def _write_stack(path: Path, n_frames: int, size: int, cam, seed: int) -> None:
    """A uint16 stack of ``n_frames`` size x size frames, written page by page."""
    import tifffile

    fields = [np.block([[_gt(f), _gt(f % 4 + 1)], [_gt((f + 1) % 4 + 1), _gt(f)]])
              for f in range(1, 5)]
    fields = [np.asarray(f[:size, :size]) * 8.0 for f in fields]  # photo-electron scale
    rng = np.random.default_rng(seed)

    def pages():
        for t in range(n_frames):
            y = cam.sample(fields[t % 4] * cam.gain, rng=rng)
            yield np.clip(np.rint(y), 0, 65535).astype(np.uint16)

    tifffile.imwrite(path, pages(), shape=(n_frames, size, size), dtype=np.uint16,
                     bigtiff=True, imagej=False, metadata={"axes": "TYX"})


_CHILD = r"""
import json, sys, time
import scoredenoise as sd
from scoredenoise.model import ScoreModel
model = sd.load_model(sys.argv[1])
t0 = time.perf_counter()
r = sd.denoise_to_file(sys.argv[2], sys.argv[3], model, "poisson-gaussian", gain=2.0,
                       offset=100.0, read_noise=3.0, dtype="input", device=sys.argv[4])
# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's peak at
# fork time, which exec keeps)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - t0, "chunks": r.chunks_total,
                  "peak_rss_mb": hwm / 1024}))
"""


def part_memory(cfg, out, tmp):
    size = 256 if cfg.tiny else 1024
    sizes_mb = (4, 16) if cfg.tiny else (256, 1024)
    cam = sd.get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    model = sd.ScoreModel(build_network("small").eval(), offset=[100.0], scale=[200.0],
                          axes="YX")
    mpath = model.save(tmp / "small.sdmodel")
    rows = []
    print("\n| stack | frames | peak RSS | seconds | Mpixel/s |\n|---|---|---|---|---|")
    for mb in sizes_mb:
        n = mb * 2 ** 20 // (size * size * 2)
        src = tmp / f"stack_{mb}MB.tif"
        _write_stack(src, n, size, cam, seed=mb)
        dst = tmp / f"stack_{mb}MB_denoised.tif"
        p = subprocess.run([sys.executable, "-c", _CHILD, str(mpath), str(src), str(dst),
                            cfg.device], capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError(p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r.update(size_mb=mb, frames=n, frame=size, file_bytes=src.stat().st_size)
        rows.append(r)
        print(f"| {mb} MB uint16 | {n} x {size}^2 | {r['peak_rss_mb']:.0f} MB | "
              f"{r['seconds']:.0f} | {n * size * size / r['seconds'] / 1e6:.2f} |", flush=True)
        src.unlink()
        dst.unlink()
    ratio = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    out["memory"] = {"rows": rows, "ratio": ratio}
    print(f"ratio of peaks: {ratio:.2f}x")


def conv_peak(device, precision, reps=5) -> float:
    """GFLOP/s of the fastest 3x3 convolution among 64 and 128 channels (in = out) at
    128x128 and 256x256, batch 1, channels-last on the CPU: the best this device does on the
    operation the network is made of."""
    best_rate = 0.0
    for c in (64, 128):
        for n in (128, 256):
            conv = torch.nn.Conv2d(c, c, 3, padding=1).eval().to(device)
            x = torch.randn(1, c, n, n, device=device)
            if device.type == "cpu":
                conv, x = conv.to(memory_format=torch.channels_last), \
                    x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast(device, precision):
                conv(x)
                for _ in range(reps):
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    conv(x)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    best_rate = max(best_rate, 2 * c * c * 9 * n * n / (time.perf_counter() - t0)
                                    / 1e9)
    return best_rate


def _best(reps, on, fn, /, *args, **kwargs) -> float:
    """Seconds of the fastest of ``reps`` calls of ``fn`` on device ``on`` (as the peak is
    the best of its runs)."""
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        if on.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _tiled_pass(net, x, tile, halo):
    """The network on tiles of ``tile`` pixels with a ``halo`` (exact stitching), the way
    inference ran before the row-streamed pass: for comparison only."""
    n_y, n_x = x.shape[2:]
    out = torch.empty_like(x)
    for a in range(0, n_y, tile):
        for b in range(0, n_x, tile):
            ya, yb = max(0, a - halo), min(n_y, a + tile + halo)
            xa, xb = max(0, b - halo), min(n_x, b + tile + halo)
            t = x[:, :, ya:yb, xa:xb]
            if x.device.type == "cpu":
                t = t.contiguous(memory_format=torch.channels_last)
            r = net(t)
            out[:, :, a:a + tile, b:b + tile] = r[:, :, a - ya:a - ya + min(tile, n_y - a),
                                                  b - xa:b - xa + min(tile, n_x - b)]
    return out


def part_throughput(cfg, out, tmp):
    n = 256 if cfg.tiny else 2048
    y = (100 + 200 * np.random.default_rng(0).random((n, n))).astype(np.float32)
    net = build_network("default").eval()
    info = network_info(net)
    flops = info["flops_per_pixel"]
    model = sd.ScoreModel(net, offset=[100.0], scale=[200.0], axes="YX")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                       else [])
    chunk_sizes = [64, 128] if cfg.tiny else [2048, 1024, 512]
    rows = []
    print(f"\ndefault network: {flops / 1e3:.0f} kFLOP per pixel; {n}x{n} image; "
          f"chunked = denoise_to_file (read, network, solve, write) with square chunks")
    print("| device | precision | conv peak GFLOP/s | "
          + " | ".join(f"chunked {c}" for c in chunk_sizes)
          + " | network (default pass) | network, 512 tiles | whole image, one call |\n|"
          + "---|" * (len(chunk_sizes) + 6))
    for dev in devices:
        xt = torch.from_numpy((y - 100) / 200)[None, None].to(dev)
        if dev.type == "cpu":
            xt = xt.contiguous(memory_format=torch.channels_last)
            run_net = net.to(memory_format=torch.channels_last)
        else:
            run_net = net.to(dev)
        for prec in ("fp32", "bf16"):
            peak = conv_peak(dev, prec)
            # warm up: the network, and the imports and first calls of the file path
            sd.denoise_to_file(y[:256, :256], tmp / "warm.zarr", model, "gaussian", sigma=5.0,
                               axes="YX", device=dev, precision=prec, overwrite=True)
            shutil.rmtree(tmp / "warm.zarr", ignore_errors=True)
            t = {}
            dst = tmp / f"tp_{dev.type}_{prec}.zarr"
            for c in chunk_sizes:
                t[f"chunked_{c}"] = _best(cfg.reps, dev, sd.denoise_to_file, y, dst, model,
                                          "gaussian", sigma=5.0, axes="YX",
                                          chunks={"Y": c, "X": c}, device=dev,
                                          precision=prec, overwrite=True)
                shutil.rmtree(dst, ignore_errors=True)
            t["network"] = _best(cfg.reps, dev, model.score, y, device=dev, precision=prec)
            with torch.inference_mode(), autocast(dev, prec):
                t["tiles_512"] = _best(cfg.reps, dev, _tiled_pass, run_net, xt, 512, model.halo)
                t["whole"] = _best(cfg.reps, dev, run_net, xt)
            frac = {k: flops * n * n / v / 1e9 / peak for k, v in t.items()}
            rows.append({"device": dev.type, "precision": prec, "peak_gflops": peak,
                         "seconds": t, "fraction_of_peak": frac,
                         "mpixel_per_s": {k: n * n / v / 1e6 for k, v in t.items()}})
            cells = [f"{100 * frac[f'chunked_{c}']:.0f} % "
                     f"({n * n / t[f'chunked_{c}'] / 1e6:.2f} Mpx/s)" for c in chunk_sizes]
            cells += [f"{100 * frac[k]:.0f} %" for k in ("network", "tiles_512", "whole")]
            print(f"| {dev.type} | {prec} | {peak:.0f} | " + " | ".join(cells) + " |",
                  flush=True)
    out["throughput"] = {"flops_per_pixel": flops, "image": n, "chunk_sizes": chunk_sizes,
                         "halo": model.halo, "rows": rows}


def part_distributed(cfg, out, tmp):
    from distributed import Client, LocalCluster

    model = sd.ScoreModel(build_network("small").eval(), offset=[5.0], scale=[20.0],
                          axes="YX")
    cam = _fmd_camera()
    n_frames = 2 if cfg.tiny else 8
    files = []
    for k in range(8):
        p = tmp / "dist_in" / f"fmd_{k}.tif"
        p.parent.mkdir(exist_ok=True)
        import tifffile

        stack = np.stack([_frame(k % 4 + 1, (k * n_frames + i) % 50) for i in range(n_frames)])
        tifffile.imwrite(p, stack, imagej=True, metadata={"axes": "TYX"})
        files.append(p)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' single thread: identical arithmetic
    t0 = time.perf_counter()
    serial = sd.denoise_files([(f, tmp / "serial" / f.name) for f in files], model,
                              noise_model=cam)
    t_serial = time.perf_counter() - t0
    torch.set_num_threads(threads)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        dist = sd.denoise_files([(f, tmp / "dist" / f.name) for f in files], model,
                                client=client, noise_model=cam)
        t_dist = time.perf_counter() - t0
    same = all(np.array_equal(sd.io.read_image(tmp / "serial" / f.name).data,
                              sd.io.read_image(tmp / "dist" / f.name).data) for f in files)
    ok = all(r["ok"] for r in serial + dist)
    out["distributed"] = {"files": len(files), "frames_per_file": n_frames,
                          "seconds_serial_1_thread": t_serial,
                          "seconds_local_cluster_2x1": t_dist, "identical": same, "ok": ok}
    print(f"\n| files | serial (1 thread) | LocalCluster 2 workers x 1 thread | identical |\n"
          f"|---|---|---|---|\n| {len(files)} x {n_frames} frames 512^2 | {t_serial:.1f} s | "
          f"{t_dist:.1f} s | {'yes' if same else 'NO'} |", flush=True)


PARTS = {"throughput": part_throughput, "seams": part_seams, "memory": part_memory,
         "distributed": part_distributed}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--steps", type=int, default=300, help="training steps (seams)")
    p.add_argument("--preset", default="default", help="network preset (seams)")
    p.add_argument("--chunk", type=int, default=512, help="chunk size (seams)")
    p.add_argument("--reps", type=int, default=3,
                   help="throughput: the fastest of this many runs of each path")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", type=Path, help="folder for the generated stacks")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke test")
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks" / "results" / "large_data.json")
    cfg = p.parse_args(argv)
    if cfg.tiny:
        cfg.steps, cfg.preset, cfg.chunk, cfg.reps = 3, "small", 64, 1
    parts = [x.strip() for x in cfg.parts.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    out = header(cfg)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="sd-large-", dir=cfg.workdir))
    try:
        for name in parts:
            PARTS[name](cfg, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish(out, cfg.out, t0)


if __name__ == "__main__":
    main()
