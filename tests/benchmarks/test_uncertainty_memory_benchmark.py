import json

from ._scripts import load_benchmark


def test_uncertainty_memory_benchmark_runs_end_to_end_tiny(tmp_path):
    mod = load_benchmark("uncertainty_memory", "uncertainty_memory")
    out = mod.main(["--tiny", "--out", str(tmp_path / "m.json")])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert set(saved["runs"]) == {"none", "64"}
    assert all(r["peak_mb"] > 0 and r["seconds"] > 0 for r in out["runs"].values())
    assert out["max_abs_difference"] < 1e-3  # the windows' map is the whole plane's
