import json

import numpy as np
import pytest

from ._scripts import load_benchmark


def test_convergence_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "c.json"
    load_benchmark("convergence").main(["--tiny", "--datasets", "pairs", "--out", str(out)])
    res = json.loads(out.read_text())["datasets"]["pairs"]
    for method in ("ours", "neighbor2neighbor"):
        d = res["defaults"][method]
        assert d["steps"] == 4 and len(d["images"]) == 5 and np.isfinite(d["psnr"])
        pts = res["curve"][method]
        assert len(pts) >= 2 and [p["step"] for p in pts] == sorted(p["step"] for p in pts)
    # ours: the same score also solved with emccd, without retraining
    assert len(res["defaults"]["ours"]["emccd"]["images"]) == 5
    assert "emccd" not in res["defaults"]["neighbor2neighbor"]
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_convergence_evaluates_a_saved_model_without_training(tmp_path):
    """``--model METHOD=PATH`` evaluates a saved model instead of training again, each
    image records the factor its score was used at, and a run without curves writes no
    figure (it would replace the curves' figure with an empty one)."""
    import scoredenoise as sd

    conv = load_benchmark("convergence")
    train, _ = conv.load("pairs", 128)
    path = tmp_path / "ours.sdmodel"
    sd.train(train, steps=2, preset="small", seed=0).save(path)
    out = tmp_path / "c.json"
    conv.main(["--tiny", "--datasets", "pairs", "--methods", "ours", "--no-curve",
               "--model", f"ours={path}", "--out", str(out)])
    d = json.loads(out.read_text())["datasets"]["pairs"]["defaults"]["ours"]
    assert d["seconds"] is None and d["model"] == str(path) and d["steps"] == 2
    assert all(0.5 <= r["score_factor"] <= 1.25 for r in d["images"])
    assert not out.with_suffix(".png").exists()  # no curves: no figure (none overwritten)
    with pytest.raises(SystemExit):
        conv.main(["--tiny", "--datasets", "pairs,fmd", "--model", f"ours={path}"])


def test_convergence_fmd_test_frames_first_or_middle():
    """``--fmd-frames middle`` tests frames 23-26 of field 4, whose signal its 50-frame
    average matches; ``first`` (the default) frames 0-3; training data are the same."""
    conv = load_benchmark("convergence")
    train_f, first = conv.load("fmd", 16)
    train_m, middle = conv.load("fmd", 16, "middle")
    assert [n for n, _, _ in first] == [f"field 4 frame {i}" for i in range(4)]
    assert [n for n, _, _ in middle] == [f"field 4 frame {i}" for i in (23, 24, 25, 26)]
    assert all(np.array_equal(a, b) for a, b in zip(train_f, train_m))
    assert np.array_equal(first[0][2], middle[0][2])  # one reference: the average
    assert not np.array_equal(first[0][1], middle[0][1])
    with pytest.raises(KeyError, match="last"):
        conv.load("fmd", 16, "last")


def test_recipe_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "r.json"
    load_benchmark("recipe").main(["--tiny", "--datasets", "pairs", "--variants",
                            "default,unconditioned,held 0.05",
                            "--out", str(out)])
    rows = json.loads(out.read_text())["datasets"]["pairs"]
    assert set(rows) >= {"noisy", "default", "unconditioned", "held 0.05",
                         "sigma_a kept"}
    assert len(rows["default"]["psnr"]) == 5


def test_exact_solve_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "e.json"
    load_benchmark("exact_solve").main(["--tiny", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert {r["data"] for r in rows} == {"uint8 frame", "float frame", "uint8 frame, emccd"}
    assert all(r["cached_ms"] >= 0 for r in rows)


def test_interactive_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "i.json"
    load_benchmark("interactive").main(["--tiny", "--out", str(out)])
    res = json.loads(out.read_text())
    assert [(r["preset"], r["steps"]) for r in res["rows"]] == [("small", 3)]
    assert np.isfinite(res["rows"][0]["psnr"]) and np.isfinite(res["noisy_psnr"])


def test_uncertainty_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "u.json"
    load_benchmark("uncertainty").main(["--tiny", "--out", str(out)])
    res = json.loads(out.read_text())
    assert len(res["images"]) == 2
    m = res["mean"]
    assert np.isfinite(m["rms_z"]) and 0 <= m["coverage_95"] <= 1 and m["cost_ratio"] > 0


def test_uncertainty_benchmark_on_fmd_counts_the_references_own_noise(tmp_path):
    out = tmp_path / "u.json"
    load_benchmark("uncertainty").main(["--tiny", "--dataset", "fmd", "--out", str(out)])
    res = json.loads(out.read_text())
    (row,) = res["images"]
    assert row["image"] == "field 4 frame 0"
    # the average's own noise only adds to the denominator
    assert row["rms_z_total"] < row["rms_z"] and 0 <= row["coverage_95_total"] <= 1
    load_benchmark("uncertainty").main(["--tiny", "--dataset", "fmd", "--fmd-frames", "middle",
                                 "--out", str(out)])
    (row,) = json.loads(out.read_text())["images"]
    assert row["image"] == "field 4 frame 23"


def test_uncertainty_figure_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "u.png"
    load_benchmark("uncertainty_figure").main(["--tiny", "--out", str(out), "--json",
                                         str(tmp_path / "u.json")])
    assert out.stat().st_size > 10_000  # the picture
    res = json.loads((tmp_path / "u.json").read_text())
    assert len(res["psnr_samples_crop"]) == 2 and res["spread_mean_crop"] > 0
    assert res["crop"][2] == 32 and np.isfinite(res["psnr_result"])


def test_calibration_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "c.json"
    load_benchmark("calibration").main(["--tiny", "--out", str(out)])
    res = json.loads(out.read_text())["cases"]
    gauss = res["Set12, gaussian sigma=25"]
    # with the exact score of a Gaussian-noise posterior the stated std is the exact one
    assert gauss["std_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert all(0 <= r["coverage_95"] <= 1 for r in res.values())


def test_posterior_models_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "p.json"
    load_benchmark("posterior_models").main(["--tiny", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["model"] == "gaussian" and rows[0]["median"] == pytest.approx(1.0, abs=1e-3)
    assert all(0 <= r["cover"] <= 1 and r["pixels"] > 0 for r in rows)


def test_convergence_defaults_over_seeds_report_their_mean_and_spread(tmp_path):
    """``--seeds 0,1`` trains the defaults once per seed; the result is their mean (per image
    too) with the spread between seeds, and each run is kept. ``--model`` then takes one
    file per seed."""
    conv = load_benchmark("convergence")
    out = tmp_path / "c.json"
    conv.main(["--tiny", "--datasets", "pairs", "--methods", "ours", "--no-curve",
               "--seeds", "0,1", "--out", str(out)])
    d = json.loads(out.read_text())["datasets"]["pairs"]["defaults"]["ours"]
    assert d["seeds"] == [0, 1] and [r["seed"] for r in d["runs"]] == [0, 1]
    a, b = d["runs"]
    assert a["psnr"] != b["psnr"]  # two trainings, not one evaluated twice
    assert d["psnr"] == pytest.approx((a["psnr"] + b["psnr"]) / 2)
    assert d["psnr_sd"] == pytest.approx(abs(a["psnr"] - b["psnr"]) / np.sqrt(2))
    assert d["images"][0]["psnr"] == pytest.approx(
        (a["images"][0]["psnr"] + b["images"][0]["psnr"]) / 2)
    assert d["emccd"]["psnr"] == pytest.approx((a["emccd"]["psnr"] + b["emccd"]["psnr"]) / 2)
    assert d["implausible_warnings"] == a["implausible_warnings"] + b["implausible_warnings"]
    with pytest.raises(SystemExit):  # two seeds, one file
        conv.main(["--tiny", "--datasets", "pairs", "--seeds", "0,1",
                   "--model", f"ours={tmp_path / 'x.sdmodel'}"])


def test_convergence_gives_both_methods_the_score_models_network():
    """Without --preset both methods get the network the score model's default picks for
    the data: the small one for the photon-starved real sets (here the FMD pairs, 1.4
    photo-electrons a pixel), the default one for bright Gaussian data."""
    conv = load_benchmark("convergence")
    train, _ = conv.load("pairs", 128)
    assert conv.score_preset(train) == "small"
    rng = np.random.default_rng(0)
    bright = [(100 + 20 * np.sin(np.arange(128) / 9.0)[:, None] * np.ones((1, 128))
               + rng.normal(0, 5, (128, 128))).astype(np.float32) for _ in range(2)]
    assert conv.score_preset(bright) == "default"
