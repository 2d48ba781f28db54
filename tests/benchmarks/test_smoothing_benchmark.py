import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_smoothing_benchmark_runs_end_to_end_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("smoothing_bench",
                                                  ROOT / "benchmarks" / "smoothing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--tiny", "--out", str(tmp_path / "s.json")])
    saved = json.loads((tmp_path / "s.json").read_text())
    for name in ("synthetic", "real"):
        rows = saved[name]["rows"]
        assert [r["sigma_a_factor"] for r in rows][::len(rows) // 3] == [0.0, 0.5, 1.0]
        assert all(np.isfinite(r["psnr"]) for r in rows)
