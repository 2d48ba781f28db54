import json

import numpy as np

from ._scripts import load_benchmark


def test_smoothing_benchmark_runs_end_to_end_tiny(tmp_path):
    mod = load_benchmark("smoothing")
    mod.main(["--tiny", "--out", str(tmp_path / "s.json")])
    saved = json.loads((tmp_path / "s.json").read_text())
    for name in ("synthetic", "real"):
        rows = saved[name]["rows"]
        assert [r["sigma_a_factor"] for r in rows][::len(rows) // 3] == [0.0, 0.5, 1.0]
        assert all(np.isfinite(r["psnr"]) for r in rows)
