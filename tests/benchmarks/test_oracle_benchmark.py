import json

import pytest

from ._scripts import load_benchmark


def test_oracle_benchmark_runs_end_to_end_tiny(tmp_path):
    mod = load_benchmark("oracle", "oracle")
    out = mod.main(["--tiny", "--out", str(tmp_path / "o.json")])
    saved = json.loads((tmp_path / "o.json").read_text())
    assert [c["case"] for c in saved["cases"]] == [c[0] for c in mod.CASES]
    cases = {c["case"]: c for c in out["cases"]}
    # Gaussian noise: the rule with the exact score is the posterior mean (Tweedie)
    row1 = cases["row 1"]
    assert row1["rule_local"] == pytest.approx(row1["mmse_local"], abs=1e-6)
    assert row1["rule_global"] == pytest.approx(row1["mmse_global"], abs=1e-6)
    # at the paper's literal row 3 the rule is far below the posterior mean
    row3 = cases["row 3"]
    assert row3["mmse_local"] - row3["rule_local"] > 5.0
    # read noise below the photon step: Algorithm 5 fails, the exact solve does not
    low = cases["row 13, sigma=2"]
    assert low["exact_local"] - low["rule_local"] > 5.0
    assert low["exact_local"] > low["mmse_local"] - 1.0
