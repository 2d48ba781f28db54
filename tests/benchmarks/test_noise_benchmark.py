import json

from ._scripts import load_benchmark


def test_noise_benchmark_runs_end_to_end_tiny(tmp_path):
    mod = load_benchmark("noise")
    mod.main(["--tiny", "--out", str(tmp_path / "n.json")])
    saved = json.loads((tmp_path / "n.json").read_text())
    assert [r["field"] for r in saved["fmd_estimation"]] == [1, 2, 3, 4]
    assert len(saved["synthetic"]) == 18
    assert "mean_cost_db" in saved["fmd_cost"]
    assert set(saved["robustness"]) == {"poisson-gaussian (FMD)",
                                        "row 14 poisson-correlated+gaussian",
                                        "row 15 rayleigh+gaussian"}
    assert set(saved["robustness"]["row 15 rayleigh+gaussian"]) == {"0.0", "0.05", "0.1", "0.2"}


def test_noise_benchmark_stated_errors_large_stacks_and_detectors_tiny(tmp_path):
    mod = load_benchmark("noise")
    mod.main(["--tiny", "--parts", "5,6,7,8,9", "--out", str(tmp_path / "n.json")])
    saved = json.loads((tmp_path / "n.json").read_text())
    assert [r["noise"] for r in saved["stated_errors"]] == ["poisson-gaussian",
                                                            "gaussian, same variance"]
    large = saved["large"]
    assert [(r["planes"], r["default"]) for r in large] == [(4, True), (4, False), (2, True),
                                                          (2, False)]
    assert all(r["peak_rss_gb"] >= r["rss_before_gb"] > 0 for r in large)
    detectors = saved["detectors"]
    assert len(detectors) == 7
    assert all(len(r["gain"]) == len(r["gain_without"]) == 1 for r in detectors)
    channels = saved["channels"]
    assert len(channels) == 2
    for row in channels.values():
        assert len(row["gains_estimated"]) == 3
        assert all(len(row[k]) == 3 for k in ("noisy", "each channel's own",
                                              "one, fitted to all channels",
                                              "one, channel 0's"))
