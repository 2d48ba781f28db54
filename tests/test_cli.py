import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import scoredenoise as sd
from scoredenoise.cli import main
from scoredenoise.noise import list_noise_models

from .test_model import untrained


def test_noise_models_lists_every_model_with_units(capsys):
    assert main(["noise-models"]) == 0
    out = capsys.readouterr().out
    for name in list_noise_models():
        assert f"\n{name}  (" in "\n" + out
    assert "--param gain=  default 1.0; data units per photo-electron; > 0" in out
    assert "Table 1 row 13" in out


def test_noise_models_json_is_the_registry_metadata(capsys):
    assert main(["noise-models", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in infos] == list_noise_models()
    pg = next(i for i in infos if i["name"] == "poisson-gaussian")
    assert [p["name"] for p in pg["parameters"]] == ["gain", "offset", "read_noise"]


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["noise-models", "nope"]) == 2
    assert "unknown noise model 'nope'" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "scoredenoise", "noise-models", "gamma"],
                         capture_output=True, text=True, check=True).stdout
    assert "Eq. (9)" in out


def _tiff(path, a, axes="YX"):
    from scoredenoise.io import write_tiff
    return write_tiff(path, a, axes=axes, pixel_size={"X": 0.2, "Y": 0.2}, unit="um")


def test_train_and_denoise_commands(tmp_path, capsys):
    import numpy as np
    import tifffile

    from scoredenoise.io import read_image

    rng = np.random.default_rng(0)
    a = _tiff(tmp_path / "a.tif", rng.poisson(50, (2, 64, 64)).astype(np.uint16), "TYX")
    b = _tiff(tmp_path / "b.tif", rng.poisson(50, (64, 64)).astype(np.uint16))
    model = tmp_path / "m.sdmodel"
    assert main(["train", str(a), str(b), "-o", str(model), "--preset", "small", "--steps", "3",
                 "--patch-size", "32", "--batch-size", "2", "--ema", "0.9", "-q"]) == 0
    assert "saved" in capsys.readouterr().out
    assert sd.load_model(model).meta["training"]["ema"] == 0.9
    out = tmp_path / "out"
    rc = main(["denoise", str(tmp_path), "-m", str(model), "--noise", "poisson-gaussian",
               "--param", "gain=1.0", "--param", "read_noise=0.5", "-o", str(out),
               "--dtype", "input", "-q"])
    assert rc == 0
    res = read_image(out / "a_denoised.tif")
    assert res.axes == "TYX" and res.dtype == np.uint16 and res.shape == (2, 64, 64)
    assert res.pixel_size["X"] == 0.2 and res.unit == "um"
    nm = res.extra["scoredenoise"]["noise_model"]
    assert nm["name"] == "poisson-gaussian" and nm["params"]["gain"] == 1.0
    assert tifffile.imread(a).dtype == np.uint16  # input untouched
    # a second run with the results among the inputs: a_denoised.tif is a.tif's earlier
    # result, left out of the inputs (not denoised again, not refused), and rewritten
    before = read_image(out / "a_denoised.tif").data
    rc = main(["denoise", str(tmp_path), str(out), "-m", str(model), "-o", str(out), "-q",
               "--overwrite", "--dtype", "input", "--noise", "poisson-gaussian",
               "--param", "gain=1.0", "--param", "read_noise=0.5"])
    assert rc == 0 and "earlier result(s) among the inputs left out" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(out / "a_denoised.tif").data, before)
    assert not (out / "a_denoised_denoised.tif").exists()
    rc = main(["denoise", str(a), "-m", str(model), "-o", str(out), "-q"])
    assert rc == 1 and "exists (use --overwrite)" in capsys.readouterr().err


def test_denoise_reports_bad_files_and_goes_on(tmp_path, capsys):
    import numpy as np

    from scoredenoise.model import ScoreModel
    from scoredenoise.network import build_network
    m = ScoreModel(build_network("small"), offset=[0.0], scale=[1.0]).save(tmp_path / "m.sdm")
    good = _tiff(tmp_path / "good.tif", np.ones((32, 32), np.float32) * 5)
    bad = _tiff(tmp_path / "bad.tif", np.ones((3, 2, 32, 32), np.float32), "TCYX")
    rc = main(["denoise", str(bad), str(good), "-m", str(m), "-o", str(tmp_path / "o"), "-q"])
    assert rc == 1
    assert (tmp_path / "o" / "good_denoised.tif").exists()
    assert not (tmp_path / "o" / "bad_denoised.tif").exists()
    assert "failed: " in capsys.readouterr().err


def test_bad_param_syntax(capsys, tmp_path):
    assert main(["denoise", "x.tif", "-m", "m", "--param", "gain", "-o", str(tmp_path)]) == 2


def test_inputs_with_one_stem_get_their_own_outputs(tmp_path, capsys):
    """a.tif, a.tiff and a.png all mapped to a_denoised.tif: two results lost."""
    import tifffile
    from skimage.io import imsave
    y = (np.random.default_rng(0).poisson(20, (48, 48)) + 5).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", y)
    tifffile.imwrite(tmp_path / "a.tiff", y + 1)
    imsave(tmp_path / "a.png", y + 2, check_contrast=False)
    untrained().save(tmp_path / "m.sdmodel")
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "a.tif"), str(tmp_path / "a.tiff"),
                 str(tmp_path / "a.png"), "-m", str(tmp_path / "m.sdmodel"), "--noise",
                 "gaussian", "--param", "sigma=3", "-o", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_png_denoised.tif", "a_tif_denoised.tif", "a_tiff_denoised.tif"]


def test_output_into_the_input_folder_runs_again(tmp_path, capsys):
    """With -o the input folder, the second run refused the whole batch: the first run's
    outputs had become inputs."""
    import tifffile
    y = (np.random.default_rng(0).poisson(20, (48, 48)) + 5).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", y)
    untrained().save(tmp_path / "m.sdmodel")
    run = ["denoise", str(tmp_path), "-m", str(tmp_path / "m.sdmodel"), "--noise", "gaussian",
           "--param", "sigma=3", "-o", str(tmp_path)]
    assert main(run) == 0
    first = (tmp_path / "a_denoised.tif").read_bytes()
    capsys.readouterr()
    assert main(run + ["--overwrite"]) == 0
    assert "1 earlier result(s) among the inputs left out" in capsys.readouterr().err
    assert (tmp_path / "a_denoised.tif").read_bytes() == first
    assert not (tmp_path / "a_denoised_denoised.tif").exists()


def test_unknown_and_repeated_params_are_named(tmp_path, capsys):
    y = (np.random.default_rng(0).poisson(20, (48, 48)) + 5).astype(np.uint16)
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, y)
    untrained().save(tmp_path / "m.sdmodel")
    base = ["denoise", str(src), "-m", str(tmp_path / "m.sdmodel"), "--noise",
            "poisson-gaussian", "-o", str(tmp_path / "o")]
    assert main(base + ["--param", "gian=2"]) != 0
    err = capsys.readouterr().err
    assert "no parameter 'gian'" in err and "gain, offset, read_noise" in err
    assert main(base + ["--param", "gain=2", "--param", "gain=3"]) != 0
    assert "--param gain is given twice" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_estimate_noise_prints_parameters_and_json(tmp_path, capsys):
    import json

    import tifffile

    from scoredenoise.cli import main
    from scoredenoise.noise import get_noise_model

    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    x = np.tile(np.linspace(0.0, 1500.0, 256), (256, 1))
    tifffile.imwrite(tmp_path / "a.tif", np.round(cam.sample(x, rng=0)).astype(np.uint16))
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    assert main(["estimate-noise", str(tmp_path / "a.tif"), "--param", "offset=100"]) == 0
    text = capsys.readouterr().out
    assert "gain" in text and "--noise poisson-gaussian --param gain=" in text
    assert main(["estimate-noise", str(tmp_path / "a.tif"), "--correlation", "none"]) == 0
    assert "noise assumed white" in capsys.readouterr().out
    # a pixel budget: of three 256x256 planes, one
    tifffile.imwrite(tmp_path / "z.tif", np.round(np.stack(
        [cam.sample(x, rng=i) for i in range(3)])).astype(np.uint16), photometric="minisblack")
    used = []
    for extra in ([], ["--max-pixels", "65536"]):
        assert main(["estimate-noise", str(tmp_path / "z.tif"), "--axes", "ZYX", "--json",
                     *extra]) == 0
        used.append(sum(json.loads(capsys.readouterr().out)[0]["nlf"]["count"]))
    assert used[0] > 2 * 65536 and 0.5 * 65536 < used[1] <= 65536
    rc = main(["estimate-noise", str(tmp_path / "a.tif"), str(tmp_path / "bad.tif"), "--json",
               "--param", "offset=100"])
    captured = capsys.readouterr()
    assert rc == 1 and "bad.tif" in captured.err  # one bad file does not stop the others
    res = json.loads(captured.out)
    assert len(res) == 1 and abs(res[0]["noise_model"]["params"]["gain"] - 2.0) < 0.1
    # photon transfer over frames of a static scene
    frames = np.stack([np.round(cam.sample(x[:128, :128], rng=i)) for i in range(10)])
    tifffile.imwrite(tmp_path / "pt.tif", frames.astype(np.uint16))
    assert main(["estimate-noise", str(tmp_path / "pt.tif"), "--photon-transfer", "--axes",
                 "TYX", "--json", "--param", "offset=100"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["nlf"]["method"] == "photon-transfer"
    # emccd's pulse shape from the frames' third cumulant, printed for denoise
    det = get_noise_model("emccd", gain=4.0, shape=2.0, offset=10.0, read_noise=2.0)
    ramp = np.tile(np.linspace(0, 400, 256), (64, 1))
    tifffile.imwrite(tmp_path / "em.tif", np.stack(
        [det.sample(ramp, rng=i) for i in range(30)]).astype(np.float32))
    assert main(["estimate-noise", str(tmp_path / "em.tif"), "--photon-transfer", "--axes",
                 "TYX", "--noise", "emccd", "--param", "offset=10", "-q"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if "denoise with:" in ln)
    shape = float(line.split("shape=")[1].split()[0])
    assert 1.3 < shape < 3.0 and "third cumulant" in text


def test_estimate_noise_estimates_a_kernel_and_prints_it_for_denoise(tmp_path, capsys):
    import json
    import shlex

    import tifffile

    from scoredenoise.cli import _parse_params, main
    from scoredenoise.noise import get_noise_model

    scan = ((0.15, 0.7, 0.15),)
    nm = get_noise_model("gaussian-correlated", sigma=6.0, kernel=scan)
    x = np.tile(np.linspace(20.0, 200.0, 256), (256, 1))
    tifffile.imwrite(tmp_path / "s.tif", nm.sample(x, rng=0).astype(np.float32))
    assert main(["estimate-noise", str(tmp_path / "s.tif"), "--noise", "gaussian-correlated",
                 "--kernel-shape", "1x3"]) == 0
    text = capsys.readouterr().out
    assert "noise correlation kernel 1x3" in text
    line = next(ln for ln in text.splitlines() if "denoise with:" in ln)
    args = shlex.split(line.split("denoise with:")[1])
    params = _parse_params([a for a in args[3:] if a != "--param"])
    np.testing.assert_allclose(params["kernel"], scan, atol=0.02)
    get_noise_model("gaussian-correlated", **params)  # what denoise --param ... builds
    assert main(["estimate-noise", str(tmp_path / "s.tif"), "--noise", "gaussian-correlated",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["kernel"]["method"] == "single-image" and "kernel" in res[0]["estimated"]
    assert main(["estimate-noise", str(tmp_path / "s.tif"), "--noise", "gaussian-correlated",
                 "--kernel-shape", "3by3"]) == 2
    assert "--kernel-shape takes HxW" in capsys.readouterr().err


def test_batch_denoise_streams_on_a_local_cluster_with_a_summary(tmp_path, capsys):
    import tifffile

    from scoredenoise.io import read_image
    from scoredenoise.stream import open_image

    from .test_model import untrained

    model = untrained().save(tmp_path / "m.sdmodel")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        tifffile.imwrite(data / f"s{i}.tif", rng.poisson(30, (2, 80, 72)).astype(np.uint16),
                         imagej=True, metadata={"axes": "TYX"})
    (data / "broken.tif").write_bytes(b"II*\x00garbage")
    common = [str(data), "-m", str(model), "--noise", "gaussian", "--param", "sigma=5",
              "--chunk", "32", "-q"]
    rc = main(["denoise", *common, "-o", str(tmp_path / "serial")])
    assert rc == 1  # the broken file failed ...
    out, err = capsys.readouterr()
    assert "3 of 4 files denoised" in out and "broken.tif  FAILED" in out
    assert "failed: " in err and "broken.tif" in err
    rc = main(["denoise", *common, "-o", str(tmp_path / "dist"), "--workers", "2",
               "--format", "zarr", "--dtype", "input"])
    out, _ = capsys.readouterr()
    assert rc == 1 and "dask cluster: 2 workers" in out and "3 of 4 files denoised" in out
    for i in range(3):  # ... the others are done, the same on the cluster as serially
        a = read_image(tmp_path / "serial" / f"s{i}_denoised.tif").data
        b = open_image(tmp_path / "dist" / f"s{i}_denoised.zarr").data.compute()
        assert b.dtype == np.uint16 and b.shape == a.shape
        # rounded to uint16 (workers use 1 thread here: float sums may differ in the last
        # bit, which can move a value at .5 by one count)
        assert np.abs(b.astype(int) - np.clip(np.rint(a), 0, 65535)).max() <= 1


def test_train_with_a_related_method_and_denoise(tmp_path, capsys):
    import tifffile

    from scoredenoise.io import read_image

    rng = np.random.default_rng(1)
    a = tmp_path / "a.tif"
    tifffile.imwrite(a, rng.poisson(30, (2, 64, 64)).astype(np.uint16), imagej=True,
                     metadata={"axes": "TYX"})
    model = tmp_path / "n2n.sdmodel"
    assert main(["train", str(a), "-o", str(model), "--objective", "neighbor2neighbor",
                 "--preset", "small", "--steps", "3", "--patch-size", "32", "-q"]) == 0
    assert main(["denoise", str(a), "-m", str(model), "-o", str(tmp_path / "out"), "-q"]) == 0
    out = read_image(tmp_path / "out" / "a_denoised.tif")
    assert out.shape == (2, 64, 64) and out.extra["scoredenoise"]["model_kind"] == "denoiser"
    assert main(["train", str(a), "-o", str(model), "--objective", "supervised", "--steps",
                 "1"]) == 2
    assert "needs targets" in capsys.readouterr().err


def test_train_network_choice_flags(tmp_path, capsys):
    """By default the data choose the network (30 photo-electrons a pixel: the paper's);
    --conditioned and --unconditioned force one, and not both."""
    import tifffile

    a = tmp_path / "a.tif"
    yy, xx = np.mgrid[:128, :128]
    photons = 120 * (np.sin(xx / 11.0) * np.cos(yy / 7.0)) ** 2
    tifffile.imwrite(a, (np.random.default_rng(2).poisson(photons) + 100).astype(np.uint16))
    base = ["train", str(a), "--preset", "small", "--steps", "2", "--patch-size", "32", "-q"]
    for flags, want in (([], False), (["--conditioned"], True), (["--unconditioned"], False)):
        out = tmp_path / f"m{len(flags)}{want}.sdmodel"
        assert main([*base, "-o", str(out), *flags]) == 0
        m = sd.load_model(out)
        assert m.conditioned is want
        assert m.train_config.conditioned == (want if flags else "auto")
    # --units photons: each image in its own photo-electrons, on a conditioned network
    assert main([*base, "-o", str(tmp_path / "p.sdmodel"), "--units", "photons"]) == 0
    m = sd.load_model(tmp_path / "p.sdmodel")
    assert m.units == "photons" and m.conditioned
    assert m.meta["data"][0]["photon_map"]["gain"][0] == pytest.approx(1.0, rel=0.2)
    with pytest.raises(SystemExit):
        main([*base, "-o", str(tmp_path / "x.sdmodel"), "--conditioned", "--unconditioned"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_denoise_exact_solve_flag(tmp_path, capsys):
    import numpy as np

    from scoredenoise.io import read_image
    from scoredenoise.model import ScoreModel
    from scoredenoise.network import build_network
    m = ScoreModel(build_network("small"), offset=[0.0], scale=[1.0]).save(tmp_path / "m.sdm")
    img = _tiff(tmp_path / "cam.tif", np.random.default_rng(0).poisson(
        3, (64, 64)).astype(np.float32) * 4 + 3)
    outs = {}
    # read noise below the gain: exact by default, Algorithm 5 with --first-order
    for flag, exact in (([], True), (["--exact"], True), (["--first-order"], False)):
        out = tmp_path / (flag[0][2:] if flag else "default")
        rc = main(["denoise", str(img), "-m", str(m), "--noise", "poisson-gaussian",
                   "--param", "gain=4", "--param", "offset=3", "--param", "read_noise=1",
                   "-o", str(out), "-q", *flag])
        assert rc == 0
        res = read_image(out / "cam_denoised.tif")
        assert res.extra["scoredenoise"]["exact_solve"] is exact
        outs[tuple(flag)] = np.asarray(res.data)
    assert np.allclose(outs[()], outs[("--exact",)])
    assert not np.allclose(outs[()], outs[("--first-order",)])  # a different solver ran
    rc = main(["denoise", str(img), "-m", str(m), "--noise", "gamma+gaussian", "--exact",
               "-o", str(tmp_path / "g"), "-q"])
    # the noise model is built before any file (at the command line's edge): a usage error
    assert rc == 2 and "exact=True is available where" in capsys.readouterr().err


def test_channels_estimated_and_denoised_each_with_its_own_noise(tmp_path, capsys):
    """A two-detector file: estimate-noise prints one estimate per channel and a denoise
    line with per-channel values, which denoise takes; denoise --estimate-noise estimates
    each channel of each file itself and gives the same output."""
    import shlex

    from scoredenoise.cli import _noise_models, _parse_params
    from scoredenoise.io import read_image
    from scoredenoise.noise import get_noise_model

    from .test_model import untrained

    cams = [get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=2.0),
            get_noise_model("poisson-gaussian", gain=8.0, offset=100.0, read_noise=2.0)]
    x = 300 + 250 * np.sin(np.linspace(0, 6, 128))[None, :] * np.cos(
        np.linspace(0, 4, 160))[:, None]
    f = _tiff(tmp_path / "two.tif", np.stack([np.round(c.sample(x, rng=i)) for i, c in
                                              enumerate(cams)]).astype(np.uint16), "CYX")
    assert main(["estimate-noise", str(f), "--param", "offset=100"]) == 0
    text = capsys.readouterr().out
    assert "channel 0:" in text and "channel 1:" in text
    line = next(ln for ln in text.splitlines() if "denoise with:" in ln)
    args = shlex.split(line.split("denoise with:")[1])
    noise = _noise_models(args[1], _parse_params([a for a in args[2:] if a != "--param"]))
    assert [nm.gain for nm in noise] == pytest.approx([2.0, 8.0], rel=0.1)
    assert {nm.offset for nm in noise} == {100.0}  # one model per channel, built at the edge
    model = untrained(channels=2).save(tmp_path / "m.sdmodel")
    assert main(["denoise", str(f), "-m", str(model), "--noise", "poisson-gaussian",
                 *args[2:], "-o", str(tmp_path / "given"), "-q"]) == 0
    capsys.readouterr()
    assert main(["denoise", str(f), "-m", str(model), "--noise", "poisson-gaussian",
                 "--estimate-noise", "--param", "offset=100", "-o", str(tmp_path / "est"),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "channel 0: gain 2" in out and "channel 1: gain " in out
    given = read_image(tmp_path / "given" / "two_denoised.tif")
    est = read_image(tmp_path / "est" / "two_denoised.tif")
    gains = [d["params"]["gain"] for d in est.extra["scoredenoise"]["noise_model"]]
    assert gains == pytest.approx([nm.gain for nm in noise], rel=1e-5)  # printed to 6 digits
    np.testing.assert_allclose(est.data, given.data, rtol=1e-4, atol=1e-2)
    assert [e["given"] for e in est.extra["scoredenoise"]["noise_estimate"]] == [["offset"]] * 2
    rc = main(["denoise", str(f), "-m", str(model), "--noise", "poisson-gaussian",
               "--param", "gain=[2,3,4]", "--param", "read_noise=[1,2]", "-o",
               str(tmp_path / "bad"), "-q"])
    assert rc == 2 and "one entry per channel" in capsys.readouterr().err


def test_estimate_noise_shows_a_progress_bar_per_file(tmp_path, capsys):
    """A bar per file counts the planes measured (stderr); -q and --json show none."""
    import json

    import tifffile

    from scoredenoise.cli import main
    from scoredenoise.noise import get_noise_model

    cam = get_noise_model("poisson-gaussian", gain=2.0, offset=100.0, read_noise=3.0)
    x = np.tile(np.linspace(0.0, 1500.0, 256), (256, 1))
    tifffile.imwrite(tmp_path / "z.tif", np.round(np.stack(
        [cam.sample(x, rng=i) for i in range(3)])).astype(np.uint16), photometric="minisblack")
    assert main(["estimate-noise", str(tmp_path / "z.tif"), "--axes", "ZYX"]) == 0
    captured = capsys.readouterr()
    assert "z.tif" in captured.err and "3/3" in captured.err and "plane" in captured.err
    assert "gain" in captured.out
    assert main(["estimate-noise", str(tmp_path / "z.tif"), "--axes", "ZYX", "-q"]) == 0
    assert "3/3" not in capsys.readouterr().err
    assert main(["estimate-noise", str(tmp_path / "z.tif"), "--axes", "ZYX", "--json"]) == 0
    captured = capsys.readouterr()
    assert "3/3" not in captured.err and json.loads(captured.out)[0]["noise_model"]


def test_posterior_std_maps_plane_by_plane(tmp_path, capsys):
    import tifffile

    import scoredenoise as sd
    from scoredenoise.io import read_image

    y = np.random.default_rng(0).normal(50, 10, (3, 40, 36)).astype(np.float32)
    tifffile.imwrite(tmp_path / "s.tif", y, metadata={"axes": "ZYX"})
    m = untrained()
    m.save(tmp_path / "m.sdmodel")
    out = tmp_path / "out"
    run = ["posterior-std", str(tmp_path / "s.tif"), "-m", str(tmp_path / "m.sdmodel"),
           "--noise", "gaussian", "--param", "sigma=10", "-o", str(out), "-q"]
    assert main(run) == 0
    img = read_image(out / "s_posterior_std.tif")
    assert img.axes == "ZYX" and img.shape == y.shape
    g = sd.get_noise_model("gaussian", sigma=10.0)
    np.testing.assert_allclose(img.data[1], sd.posterior_std(y[1], m, g, rng=0), rtol=1e-6)
    md = tifffile.TiffFile(out / "s_posterior_std.tif").shaped_metadata[0]["scoredenoise"]
    assert md["kind"] == "posterior std" and md["noise_model_chosen"]["name"] == "gaussian"
    assert md == sd.provenance(m, g, sigma_a=md["sigma_a"], source=str(tmp_path / "s.tif"),
                               kind="posterior std", model_source=str(tmp_path / "m.sdmodel"))
    # an existing output is kept, a model without the derivation and bad axes say why
    before = (out / "s_posterior_std.tif").read_bytes()
    capsys.readouterr()
    assert main(run) == 1
    assert "exists (use --overwrite)" in capsys.readouterr().err
    assert (out / "s_posterior_std.tif").read_bytes() == before
    assert main(run[:4] + ["--noise", "poisson-gaussian", "--param", "gain=2", "-o",
                           str(tmp_path / "pg"), "-q"]) == 0
    # every model without a correlation kernel (gamma: through its exponential family)
    assert main(run[:4] + ["--noise", "gamma", "-o", str(tmp_path / "gam"), "-q"]) == 0
    assert np.isfinite(read_image(tmp_path / "gam" / "s_posterior_std.tif").data).all()
    # correlated models too, their kernel given as JSON: the API's map, plane by plane
    kernel = [[0.0, 0.2, 0.0], [0.2, 0.6, 0.0], [0.0, 0.0, 0.0]]
    assert main(run[:4] + ["--noise", "gaussian-correlated", "--param", "sigma=8",
                           "--param", f"kernel={json.dumps(kernel)}", "-o",
                           str(tmp_path / "gc"), "-q"]) == 0
    gc = sd.get_noise_model("gaussian-correlated", sigma=8.0, kernel=kernel)
    np.testing.assert_allclose(read_image(tmp_path / "gc" / "s_posterior_std.tif").data[2],
                               sd.posterior_std(y[2], m, gc, rng=0), rtol=1e-6)
    assert main(run + ["--overwrite", "--axes", "YXZ"]) == 1
    assert "with Y and X last" in capsys.readouterr().err


def test_prior_training_and_posterior_samples(tmp_path, capsys):
    import tifffile

    from scoredenoise.io import read_image

    rng = np.random.default_rng(0)
    clean = np.clip(rng.normal(0.5, 0.1, (2, 32, 32)), 0, 1).astype(np.float32)
    tifffile.imwrite(tmp_path / "clean.tif", clean)  # two planes
    assert main(["train", str(tmp_path / "clean.tif"), "-o", str(tmp_path / "p.sdmodel"),
                 "--objective", "prior", "--steps", "2", "--preset", "small",
                 "--patch-size", "16", "--batch-size", "2", "-q"]) == 0
    noisy = (clean[0] + rng.normal(0, 0.05, (32, 32))).astype(np.float32)
    tifffile.imwrite(tmp_path / "y.tif", noisy)
    out = tmp_path / "out"
    run = ["sample-posterior", str(tmp_path / "y.tif"), "-p", str(tmp_path / "p.sdmodel"),
           "--sigma", "0.05", "-n", "2", "-o", str(out), "-q"]
    assert main(run) == 0
    xs, spread = read_image(out / "y_samples.tif"), read_image(out / "y_spread.tif")
    assert xs.axes == "SYX" and xs.shape == (2, 32, 32) and spread.shape == (32, 32)
    np.testing.assert_allclose(spread.data, np.asarray(xs.data).std(axis=0), rtol=1e-5)
    assert xs.extra["scoredenoise"]["kind"] == "posterior samples"
    capsys.readouterr()
    assert main(run) == 1 and "exists (use --overwrite)" in capsys.readouterr().err
    # a self-supervised score model cannot drive it, and says what can
    untrained().save(tmp_path / "m.sdmodel")
    assert main(run[:2] + ["-p", str(tmp_path / "m.sdmodel")] + run[4:]) == 2
    assert "objective='prior'" in capsys.readouterr().err


def test_camera_prior_and_its_samples(tmp_path, capsys):
    """train --objective prior --camera ... records the camera; sample-posterior then needs
    no --sigma (and refuses one), and writes samples in ADU, never below the offset."""
    import tifffile

    from scoredenoise.io import read_image
    from scoredenoise.noise import PoissonGaussian

    rng = np.random.default_rng(0)
    clean = (40 + 20 * rng.random((2, 32, 32))).astype(np.float32)
    tifffile.imwrite(tmp_path / "avg.tif", clean)
    base = ["train", str(tmp_path / "avg.tif"), "-o", str(tmp_path / "p.sdmodel"),
            "--objective", "prior", "--steps", "2", "--preset", "small", "--patch-size",
            "16", "--batch-size", "2", "-q"]
    cam = ["--camera", "gain=3.8", "--camera", "offset=3.5", "--camera", "read_noise=1"]
    assert main(base[:5] + ["score"] + base[6:] + cam) == 2
    assert "use it with --objective prior" in capsys.readouterr().err
    assert main(base + cam) == 0
    camera = PoissonGaussian(gain=3.8, offset=3.5, read_noise=1.0)
    noisy = camera.sample(clean[0] - 3.5, rng=1).astype(np.float32)
    tifffile.imwrite(tmp_path / "y.tif", noisy)
    run = ["sample-posterior", str(tmp_path / "y.tif"), "-p", str(tmp_path / "p.sdmodel"),
           "-n", "2", "-o", str(tmp_path / "out"), "-q"]
    assert main(run + ["--sigma", "2"]) == 2
    assert "drop --sigma" in capsys.readouterr().err
    assert main(run) == 0
    xs = read_image(tmp_path / "out" / "y_samples.tif")
    assert xs.shape == (2, 32, 32) and float(np.min(xs.data)) >= 3.5
    assert xs.extra["scoredenoise"]["camera"] == camera.to_dict()


def test_denoise_tta_flag(tmp_path):
    import scoredenoise as sd
    from scoredenoise.io import read_image

    m = untrained()
    m.save(tmp_path / "m.sdmodel")
    y = np.random.default_rng(0).normal(50, 10, (64, 64)).astype(np.float32)
    img = _tiff(tmp_path / "y.tif", y)
    base = ["denoise", str(img), "-m", str(tmp_path / "m.sdmodel"), "--noise", "gaussian",
            "--param", "sigma=10", "-q"]
    assert main(base + ["-o", str(tmp_path / "plain"), "--no-tta"]) == 0
    assert main(base + ["-o", str(tmp_path / "tta"), "--tta"]) == 0
    assert main(base + ["-o", str(tmp_path / "auto")]) == 0
    plain = read_image(tmp_path / "plain" / "y_denoised.tif")
    tta = read_image(tmp_path / "tta" / "y_denoised.tif")
    assert plain.extra["scoredenoise"]["tta"] is False and tta.extra["scoredenoise"]["tta"]
    # by default, the model's choice (on for this small network), recorded resolved
    auto = read_image(tmp_path / "auto" / "y_denoised.tif")
    assert m.tta_default and auto.extra["scoredenoise"]["tta"] is True
    np.testing.assert_array_equal(np.asarray(auto.data), np.asarray(tta.data))
    g = sd.get_noise_model("gaussian", sigma=10.0)
    np.testing.assert_allclose(np.asarray(tta.data), sd.denoise(y, m, g, tta=True),
                               rtol=1e-4, atol=1e-3)
    assert np.abs(np.asarray(tta.data) - np.asarray(plain.data)).max() > 1e-4
