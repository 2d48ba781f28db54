import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quality_benchmark_runs_end_to_end_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--tiny", "--rows", "1,9", "--out", str(tmp_path / "q.json")])
    saved = json.loads((tmp_path / "q.json").read_text())
    assert [r["row"] for r in saved["natural"]] == [1, 9] == [r["row"] for r in out["natural"]]
    for key in ("psnr_noisy", "psnr_classical", "psnr_ours", "psnr_supervised"):
        assert key in saved["natural"][0]
    assert "precision" in saved["natural"][0]
    assert saved["fmd"]["psnr_noise2noise"] > 0
