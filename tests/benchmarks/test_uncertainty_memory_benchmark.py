import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_uncertainty_memory_benchmark_runs_end_to_end_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("uncertainty_memory",
                                                  ROOT / "benchmarks" / "uncertainty_memory.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--tiny", "--out", str(tmp_path / "m.json")])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert set(saved["runs"]) == {"none", "64"}
    assert all(r["peak_mb"] > 0 and r["seconds"] > 0 for r in out["runs"].values())
    assert out["max_abs_difference"] < 1e-3  # the windows' map is the whole plane's
