import json

import pytest

from ._scripts import load_benchmark


@pytest.mark.slow
def test_large_data_benchmark_runs_end_to_end_tiny(tmp_path):
    mod = load_benchmark("large_data", "large_bench")
    mod.main(["--tiny", "--out", str(tmp_path / "l.json"), "--workdir", str(tmp_path)])
    saved = json.loads((tmp_path / "l.json").read_text())
    assert saved["seams"]["max_abs_diff_over_range"] <= 1e-3
    assert abs(saved["seams"]["psnr_difference_db"]) < 0.01
    assert len(saved["memory"]["rows"]) == 2 and saved["memory"]["rows"][0]["peak_rss_mb"] > 0
    assert {r["precision"] for r in saved["throughput"]["rows"]} >= {"fp32", "bf16"}
    assert saved["distributed"]["identical"] and saved["distributed"]["ok"]
    assert [p.name for p in tmp_path.iterdir()] == ["l.json"]  # generated stacks removed
