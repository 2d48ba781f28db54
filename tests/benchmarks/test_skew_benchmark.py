import json

import numpy as np
import pytest

import scoredenoise as sd

from ._scripts import load_benchmark


def test_reference_ratio_tells_fixed_steps_from_multiplied_pulses():
    """Against a known clean image: photon counts give 1, EMCCD pulses (shape 1) 1.5, and
    the shape follows from the ratio."""
    skew = load_benchmark("skew")
    yy, xx = np.mgrid[:384, :384]
    ref = 5 + 150 * (np.sin(xx / 23.0) * np.cos(yy / 29.0)) ** 2
    rng = np.random.default_rng(0)
    pg = sd.noise.PoissonGaussian(gain=2.0, read_noise=1.0).sample(ref, rng=rng)
    em = sd.noise.Emccd(gain=1.0, shape=1.0, read_noise=1.0).sample(ref, rng=rng)
    got_pg = skew.reference_ratio(pg, ref, clip=(-np.inf, np.inf))
    got_em = skew.reference_ratio(em, ref, clip=(-np.inf, np.inf))
    assert got_pg["gain"] == pytest.approx(2.0, rel=0.05)
    assert abs(got_pg["ratio"] - 1.0) < max(3 * got_pg["stderr"], 0.1)
    assert abs(got_em["ratio"] - 1.5) < max(3 * got_em["stderr"], 0.1)
    shape = sd.noise.Emccd.shape_for_skew
    assert shape(1.5) == pytest.approx(1.0) and shape(1.25) == pytest.approx(3.0)
    assert shape(0.9) == 50.0 and shape(1.9) == 0.5  # the parameter's range


def test_skew_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "s.json"
    load_benchmark("skew").main(["--tiny", "--datasets", "fmd,pairs", "--out", str(out)])
    res = json.loads(out.read_text())["datasets"]
    assert len(res["fmd"]["images"]) == 1 and np.isfinite(res["fmd"]["median"])
    assert len(res["pairs"]["images"]) == 5
    assert set(res["pairs"]["images"][0]["controls"]) == {"poisson-gaussian", "emccd-1"}
    with pytest.raises(SystemExit):
        load_benchmark("skew").main(["--datasets", "mars"])
