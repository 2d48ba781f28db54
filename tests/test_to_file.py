"""Streaming one file (scoredenoise.to_file): lazy input read chunk by chunk, chunked output
equal to the whole image, atomic and resumable writes, per-file noise estimates."""


import numpy as np
import pytest
import tifffile

import scoredenoise as sd
from scoredenoise.batch import denoise_files
from scoredenoise.estimate import NoiseToEstimate
from scoredenoise.io import open_image, read_image
from scoredenoise.model import Cancelled
from scoredenoise.to_file import denoise_to_file

from .test_model import untrained


def _stack(shape=(3, 200, 180), seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    x = 40 + 30 * np.sin(np.linspace(0, 6, shape[-1]))[None, :] + np.zeros(shape[-2:])
    return rng.poisson(np.broadcast_to(x, shape)).astype(dtype) + 10


def _within_bound(a, b, data):
    # the issue's seam bound: max abs difference <= 1e-3 of the data range
    rng = float(np.ptp(data))
    assert np.abs(np.asarray(a, np.float64) - b).max() <= 1e-3 * rng


@pytest.mark.parametrize("noise,params", [
    ("poisson-gaussian", {"gain": 1.0, "offset": 10.0, "read_noise": 1.0}),
    ("gaussian-correlated", {"sigma": 8.0}),  # the correlation operator A: a wider halo
])
def test_chunked_output_equals_whole_image_2d(tmp_path, noise, params):
    m = untrained()
    y = _stack()
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, y, imagej=True, metadata={"axes": "TYX"})
    ref = sd.denoise(y.astype(np.float32), m, noise, axes="TYX", **params)
    r = denoise_to_file(src, tmp_path / "out.tif", m, noise, chunks={"Y": 64, "X": 64},
                        **params)
    assert r.chunks_total >= 3 * 3 * 3 and r.chunks_computed == r.chunks_total
    _within_bound(read_image(r.path).data, ref, y)


def test_chunked_output_equals_whole_image_3d(tmp_path):
    m = untrained(dims=3)
    y = _stack((20, 120, 112)).astype(np.float32)
    for noise, params, out in (("poisson-gaussian", {"gain": 1.0, "offset": 10.0}, "a.zarr"),
                               ("gaussian-correlated", {"sigma": 8.0}, "b.zarr")):
        ref = sd.denoise(y, m, noise, axes="ZYX", **params)
        r = denoise_to_file(y, tmp_path / out, m, noise, axes="ZYX",
                            chunks={"Z": 8, "Y": 64, "X": 64}, **params)
        assert r.chunks_total > 1
        _within_bound(open_image(r.path).data.compute(), ref, y)


class CountingArray:
    """An array that records every read (shape of each region asked for)."""

    def __init__(self, a):
        self.a, self.reads = a, []
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, idx):
        out = self.a[idx]
        self.reads.append(out.shape)
        return out


def test_lazy_input_is_read_chunk_by_chunk_never_whole(tmp_path):
    m = untrained()
    y = _stack((6, 256, 256))
    src = CountingArray(y)
    r = denoise_to_file(src, tmp_path / "out.tif", m, "gaussian", axes="TYX",
                        chunks={"Y": 128, "X": 128}, sigma=5.0)
    assert r.chunks_total == 6 * 2 * 2
    biggest = max(int(np.prod(s)) for s in src.reads)
    assert biggest <= (128 + 2 * m.halo) ** 2  # a chunk and its halo, never a stack
    # in all, each chunk once with its halo
    assert sum(int(np.prod(s)) for s in src.reads) <= y.size * ((128 + 2 * m.halo) / 128) ** 2


def test_ome_zarr_input_and_zarr_output_keep_axes_and_pixel_sizes(tmp_path):
    import zarr

    y = _stack((4, 64, 64))
    root = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w")
    root.create_array("0", data=y, chunks=(1, 32, 32))
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": "t", "type": "time"},
                                   {"name": "y", "type": "space", "unit": "micrometer"},
                                   {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.3, 0.3]}]}]}]
    img = open_image(tmp_path / "in.ome.zarr")
    assert img.axes == "TYX" and img.pixel_size == {"Y": 0.3, "X": 0.3}
    m = untrained()
    r = denoise_to_file(tmp_path / "in.ome.zarr", tmp_path / "out.zarr", m, "gaussian",
                        sigma=5.0, dtype="input", compression="zstd")
    assert "Zstd" in repr(zarr.open_array(str(r.path)).compressors)
    out = open_image(r.path)
    assert out.axes == "TYX" and out.pixel_size == {"Y": 0.3, "X": 0.3}
    assert out.dtype == np.uint16
    assert out.extra["scoredenoise"]["noise_model"]["name"].startswith("gaussian")


def test_interrupted_write_leaves_no_partial_output_and_resumes(tmp_path):
    m = untrained()
    y = _stack((4, 128, 128))
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, y, imagej=True, metadata={"axes": "TYX"})
    whole = denoise_to_file(src, tmp_path / "whole.tif", m, "gaussian", sigma=5.0,
                            chunks={"Y": 64, "X": 64})
    out = tmp_path / "out.tif"
    calls = []

    def cancel_after_5():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled, match="cancelled after 5 of 16 chunks"):
        denoise_to_file(src, out, m, "gaussian", sigma=5.0, chunks={"Y": 64, "X": 64},
                        cancel=cancel_after_5)
    assert not out.exists()  # nothing under the final name
    assert (tmp_path / ".out.tif.partial.zarr").is_dir()
    seen = []
    r = denoise_to_file(src, out, m, "gaussian", sigma=5.0, chunks={"Y": 64, "X": 64},
                        progress=lambda d, t: seen.append((d, t)))
    assert (r.chunks_resumed, r.chunks_computed) == (5, 11)
    assert seen[0] == (5, 16) and seen[-1] == (16, 16)
    np.testing.assert_array_equal(read_image(out).data, read_image(whole.path).data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif", "whole.tif"]


def test_resume_starts_over_when_the_settings_change(tmp_path):
    m = untrained()
    y = _stack((2, 64, 64))
    out = tmp_path / "out.zarr"
    with pytest.raises(Cancelled):
        denoise_to_file(y, out, m, "gaussian", axes="TYX", sigma=5.0,
                        cancel=lambda: True)
    r = denoise_to_file(y, out, m, "gaussian", axes="TYX", sigma=6.0)  # another sigma
    assert r.chunks_resumed == 0 and r.chunks_computed == r.chunks_total


def test_resume_sees_a_zarr_input_changed_in_place(tmp_path):
    """A zarr input rewritten in place keeps its folder's stat: the resume reused stale
    chunks (planes with mean 99.7 instead of 1000.6)."""
    import zarr
    m = untrained()
    src = tmp_path / "in.zarr"
    z = zarr.open(str(src), mode="w", shape=(2, 64, 64), chunks=(1, 64, 64), dtype="f4")
    z[:] = 100.0
    z.attrs["axes"] = "TYX"
    out = tmp_path / "out.zarr"
    calls = []
    with pytest.raises(Cancelled):
        denoise_to_file(src, out, m, "gaussian", sigma=5.0, chunks={"T": 1},
                        cancel=lambda: calls.append(1) or len(calls) > 1)
    z[:] = 1000.0  # same folder, same shape: only the chunk files changed
    r = denoise_to_file(src, out, m, "gaussian", sigma=5.0, chunks={"T": 1})
    assert r.chunks_resumed == 0
    assert open_image(out).data.compute().mean() > 900


def test_failures_and_killed_writes_leave_no_temporary_files(tmp_path):
    m = untrained()
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((2, 64, 64)), imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(FloatingPointError):
        denoise_to_file(src, tmp_path / "bad.tif", m, "gaussian", sigma=1e30)
    assert not (tmp_path / ".bad.tif.partial.zarr").exists()  # nothing to resume
    stale = tmp_path / ".out.tif.abc123.tif"  # what a killed final write leaves
    stale.write_bytes(b"x" * 1000)
    denoise_to_file(src, tmp_path / "out.tif", m, "gaussian", sigma=5.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]


def test_errors_protect_inputs_and_outputs(tmp_path):
    m = untrained()
    y = _stack((2, 64, 64))
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, y)
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        denoise_to_file(src, src, m, "gaussian")
    (tmp_path / "out.tif").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        denoise_to_file(src, tmp_path / "out.tif", m, "gaussian")
    assert (tmp_path / "out.tif").read_bytes() == b"keep me"
    with pytest.raises(ValueError, match="format must be 'tiff' or 'zarr', got 'png'"):
        denoise_to_file(src, tmp_path / "o.png", m, "gaussian", format="png")
    with pytest.raises(ValueError, match="chunks name axes Q"):
        denoise_to_file(src, tmp_path / "o.tif", m, "gaussian", chunks={"Q": 3})
    with pytest.raises(ValueError, match="TIFF output needs Y and X as the last axes"):
        denoise_to_file(np.zeros((64, 64, 2), np.float32), tmp_path / "o.tif",
                        untrained(channels=2), "gaussian", axes="YXC")
    assert not (tmp_path / ".o.tif.partial.zarr").exists()  # refused before any work
    r = denoise_to_file(src, tmp_path / "out.tif", m, "gaussian", overwrite=True,
                        compression="zlib", tile_size=48)
    with tifffile.TiffFile(r.path) as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].compression == 8  # deflate
    plain = denoise_to_file(src, tmp_path / "plain.tif", m, "gaussian")
    np.testing.assert_array_equal(read_image(r.path).data, read_image(plain.path).data)


def test_overwrite_refuses_a_folder_and_replaces_atomically(tmp_path):
    """overwrite=True used to rmtree whatever stood at the output path, and removed the old
    output before the new one was in place."""
    m = untrained()
    y = _stack((2, 64, 64))
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, y, imagej=True, metadata={"axes": "TYX"})
    folder = tmp_path / "results.tif"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep")
    with pytest.raises(IsADirectoryError, match="refusing to replace a folder"):
        denoise_to_file(src, folder, m, "gaussian", overwrite=True)
    plain = tmp_path / "plain.zarr"
    plain.mkdir()
    (plain / "precious.txt").write_text("keep")
    with pytest.raises(IsADirectoryError, match="not a zarr store"):
        denoise_to_file(src, plain, m, "gaussian", overwrite=True)
    assert (folder / "precious.txt").read_text() == "keep"
    assert (plain / "precious.txt").read_text() == "keep"
    # a zarr result is replaced by the new one (moved aside, not deleted first)
    out = tmp_path / "r.zarr"
    first = denoise_to_file(src, out, m, "gaussian", sigma=5.0)
    a = open_image(first.path).data.compute()
    second = denoise_to_file(src, out, m, "gaussian", sigma=40.0, overwrite=True)
    b = open_image(second.path).data.compute()
    assert not np.allclose(a, b)
    assert not list(tmp_path.glob(".*partial*"))
    # a TIFF result is replaced by os.replace: the old file stays until the new one is done
    t = tmp_path / "r.tif"
    t.write_bytes(b"old result")

    def failing(done, total):
        if done >= total:  # all chunks written, killed before the final file is in place
            raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError, match="interrupted"):
        denoise_to_file(src, t, m, "gaussian", overwrite=True, progress=failing)
    assert t.read_bytes() == b"old result"


def test_non_finite_results_fail_the_file(tmp_path):
    """Absurd parameters (sigma=1e30) gave all-inf output reported 'ok'."""
    m = untrained()
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((2, 64, 64)), imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(FloatingPointError, match="inf or NaN.*out of range"):
        denoise_to_file(src, tmp_path / "o.tif", m, "gaussian", sigma=1e30)
    assert not (tmp_path / "o.tif").exists()
    r = denoise_files([(src, tmp_path / "o2.tif")], m, noise_model="gaussian", sigma=1e30)
    assert not r[0]["ok"] and "inf or NaN" in r[0]["error"]


def test_multichannel_time_lapse_streams_with_channels_whole(tmp_path):
    m = untrained(channels=2)
    y = np.stack([_stack((3, 96, 80), seed=s) for s in (1, 2)], axis=1).astype(np.float32)
    ref = sd.denoise(y, m, "gaussian", axes="TCYX", sigma=5.0)
    r = denoise_to_file(y, tmp_path / "mc.tif", m, "gaussian", axes="TCYX",
                        chunks={"Y": 48, "X": 48}, sigma=5.0)
    out = read_image(r.path)
    assert out.axes == "TCYX" and r.chunks_total == 3 * 2 * 2
    _within_bound(out.data, ref, y)


def test_each_file_and_channel_gets_its_own_estimated_noise(tmp_path):
    """estimate_noise=True: the noise model is estimated from each source, one per channel,
    solved with, stored in the output's metadata and returned; the output equals denoising
    with those estimates given."""
    cams = [sd.get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=2.0),
            sd.get_noise_model("poisson-gaussian", gain=8.0, offset=100.0, read_noise=2.0)]
    x = 300 + 250 * np.sin(np.linspace(0, 6, 128))[None, :] * np.cos(
        np.linspace(0, 4, 160))[:, None]
    y = np.stack([cam.sample(x, rng=c) for c, cam in enumerate(cams)]).astype(np.float32)
    m = untrained(channels=2)
    r = denoise_to_file(y, tmp_path / "e.tif", m, "poisson-gaussian", axes="CYX",
                        estimate_noise=True, offset=100.0, chunks={"Y": 64, "X": 64})
    gains = [d["params"]["gain"] for d in r.noise_model]
    assert gains == pytest.approx([2.0, 8.0], rel=0.1)
    assert [e["given"] for e in r.noise_estimate] == [["offset"], ["offset"]]
    md = read_image(r.path).extra["scoredenoise"]
    assert md["noise_model"] == r.noise_model and len(md["noise_estimate"]) == 2
    given = denoise_to_file(y, tmp_path / "g.tif", m, r.noise_model, axes="CYX",
                            chunks={"Y": 64, "X": 64})
    np.testing.assert_array_equal(read_image(r.path).data, read_image(given.path).data)
    one = denoise_to_file(y, tmp_path / "o.tif", m, r.noise_model[0], axes="CYX")
    assert not np.allclose(read_image(one.path).data[1], read_image(r.path).data[1])
    with pytest.raises(ValueError, match="a denoiser model uses no noise model"):
        denoise_to_file(y, tmp_path / "d.tif", untrained(channels=2, kind="denoiser"),
                        axes="CYX", estimate_noise=True)
    with pytest.raises(ValueError, match="give one, not a list"):
        denoise_to_file(y, tmp_path / "d.tif", m, cams, axes="CYX", estimate_noise=True)


def test_cancel_stops_the_noise_estimate_before_any_chunk(tmp_path):
    """With estimate_noise=True the cancel event is checked between the planes measured:
    a run cancelled there raises Cancelled and writes no output."""
    import threading

    cam = sd.get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=2.0)
    y = np.stack([cam.sample(np.full((96, 96), 400.0), rng=i) for i in range(3)])
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled, match="cancelled after 0 of 3"):
        denoise_to_file(y.astype(np.float32), tmp_path / "c.tif", untrained(),
                        "poisson-gaussian", axes="ZYX", estimate_noise=True, cancel=stop)
    assert not (tmp_path / "c.tif").exists()


def test_a_noise_model_to_estimate_is_handed_on_like_estimate_noise(tmp_path):
    """The CLI hands the engine a NoiseToEstimate (built at its edge), not a name and loose
    parameters: the same output as estimate_noise=True with the same known values."""
    m = untrained()
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((2, 96, 80)), imagej=True, metadata={"axes": "TYX"})
    a = denoise_to_file(src, tmp_path / "a.tif", m, "poisson-gaussian", estimate_noise=True,
                        offset=10.0)
    spec = NoiseToEstimate("poisson-gaussian", {"offset": 10.0})
    b = denoise_to_file(src, tmp_path / "b.tif", m, spec)
    assert a.noise_model == b.noise_model and a.noise_model["params"]["offset"] == 10.0
    np.testing.assert_array_equal(read_image(a.path).data, read_image(b.path).data)
    with pytest.raises(ValueError, match="poisson-gaussian has no parameter sigma; its "
                                         "parameters are"):
        NoiseToEstimate("poisson-gaussian", {"sigma": 1.0})
    with pytest.raises(ValueError, match=r"give gain in NoiseToEstimate\(known=...\)"):
        denoise_to_file(src, tmp_path / "c.tif", m, spec, gain=2.0)
