import numpy as np
import pytest
import tifffile

from scoredenoise.io import find_images, open_image, read_image, write_png, write_tiff


def test_tiff_round_trip_keeps_axes_pixel_sizes_and_metadata(tmp_path):
    a = np.arange(2 * 3 * 16 * 20, dtype=np.uint16).reshape(2, 3, 16, 20)
    p = write_tiff(tmp_path / "x.tif", a, axes="TZYX", pixel_size={"X": 0.1, "Y": 0.1, "Z": 0.5},
                   unit="um", metadata={"noise_model": {"name": "gaussian"}})
    im = read_image(p)
    assert im.axes == "TZYX" and im.dtype == np.uint16
    np.testing.assert_array_equal(im.data, a)
    assert im.pixel_size == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 0.5})
    assert im.unit == "um" and im.extra["noise_model"] == {"name": "gaussian"}
    lazy = read_image(p, lazy=True)
    assert not isinstance(lazy.data, np.ndarray)
    np.testing.assert_array_equal(np.asarray(lazy.data[1, 2, 3:5]), a[1, 2, 3:5])


def test_imagej_tiff_axes(tmp_path):
    import tifffile
    a = np.zeros((4, 2, 8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", a, imagej=True, metadata={"axes": "ZCYX"},
                     resolution=(2.0, 2.0))
    im = read_image(tmp_path / "ij.tif")
    assert im.axes == "ZCYX"
    assert im.pixel_size["X"] == pytest.approx(0.5)


def test_png_and_folders(tmp_path):
    write_png(tmp_path / "a.png", np.full((8, 9), 7, np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    files = find_images([tmp_path])
    assert [f.name for f in files] == ["a.png"]
    im = read_image(files[0])
    assert im.axes == "YX" and im.data.shape == (8, 9)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import tifffile

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", boom)
    with pytest.raises(OSError, match="disk full"):
        write_tiff(tmp_path / "out.tif", np.zeros((4, 4)), axes="YX")
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image(tmp_path / "nope.tif")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported image type '.jpg'"):
        read_image(tmp_path / "a.jpg")
    with pytest.raises(FileNotFoundError, match="no TIFF, PNG or zarr images"):
        find_images([tmp_path])


def test_plain_stack_without_axes_is_planes_not_channels(tmp_path):
    """tifffile.imwrite(path, stack) without metadata stores 3-4 planes as 'samples' (planar
    RGB): read as channels, training made a multi-channel model of a stack of planes."""
    import tifffile
    for n in (3, 4, 7):
        tifffile.imwrite(tmp_path / f"s{n}.tif", np.zeros((n, 16, 16), np.uint16))
        assert read_image(tmp_path / f"s{n}.tif").axes == "ZYX"
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((2, 3, 16, 16), np.uint16),
                     photometric="minisblack")
    assert read_image(tmp_path / "t.tif").axes == "TZYX"
    # recorded axes and real (interleaved) colour stay as they are
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, 16, 16), np.uint16),
                     metadata={"axes": "CYX"})
    assert read_image(tmp_path / "c.tif").axes == "CYX"
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    assert read_image(tmp_path / "rgb.tif").axes == "YXC"


def test_written_files_follow_the_umask(tmp_path):
    """mkstemp makes owner-only files; outputs and model files get what the umask gives."""
    import os

    from .test_model import untrained
    old = os.umask(0o022)
    try:
        write_tiff(tmp_path / "a.tif", np.zeros((4, 4), np.float32), axes="YX")
        write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
        untrained().save(tmp_path / "m.sdmodel")
        os.umask(0o077)
        write_tiff(tmp_path / "b.tif", np.zeros((4, 4), np.float32), axes="YX")
    finally:
        os.umask(old)
    for name in ("a.tif", "a.png", "m.sdmodel"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert (tmp_path / "b.tif").stat().st_mode & 0o777 == 0o600


def test_tiff_written_from_pages_one_at_a_time(tmp_path):
    """Pages given one by one (streamed: one in memory) make the same file as the array; a
    generator that fails half way leaves no output; pages need their dtype."""
    data = np.random.default_rng(0).random((4, 12, 10)).astype(np.float32)
    held = []

    def pages():
        for p in data:
            held.append(p)
            yield p

    write_tiff(tmp_path / "p.tif", pages(), shape=data.shape, dtype=np.float32, axes="ZYX",
               pixel_size={"X": 0.5, "Y": 0.5})
    img = read_image(tmp_path / "p.tif")
    assert img.axes == "ZYX" and img.pixel_size["X"] == 0.5 and len(held) == 4
    np.testing.assert_array_equal(img.data, data)

    def failing():
        yield data[0]
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        write_tiff(tmp_path / "f.tif", failing(), shape=data.shape, dtype=np.float32,
                   axes="ZYX")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["p.tif"]
    with pytest.raises(ValueError, match="dtype"):
        write_tiff(tmp_path / "g.tif", pages(), shape=data.shape, axes="ZYX")


def test_tiff_is_opened_lazily_with_metadata(tmp_path):
    y = np.random.default_rng(0).poisson(40, (5, 64, 48)).astype(np.uint16)
    p = tmp_path / "in.tif"
    tifffile.imwrite(p, y, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "TYX", "unit": "um"})
    img = open_image(p)
    assert img.axes == "TYX" and img.pixel_size["X"] == 0.25 and img.unit == "um"
    assert type(img.data).__module__.startswith("dask")
    assert img.data.chunksize == (1, 64, 48)
    np.testing.assert_array_equal(img.data[2].compute(), y[2])
