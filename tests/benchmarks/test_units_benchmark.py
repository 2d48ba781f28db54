import json

import numpy as np
import pytest

from ._scripts import load_benchmark


def test_units_map_each_image_and_its_noise_model_alike():
    """Photons: the comb of counts one unit apart, the read noise in photo-electrons, the
    offset removed; the map's factor returned to map the result back."""
    import scoredenoise as sd

    units = load_benchmark("units")
    nm = sd.noise.PoissonGaussian(gain=4.0, offset=10.0, read_noise=2.0)
    y = np.array([[10, 14, 18], [22, 26, 10]], dtype=np.uint8)
    u, nm_u, c = units.mapped(y, nm, "photons")
    np.testing.assert_allclose(u, [[0, 1, 2], [3, 4, 0]])
    assert (nm_u.gain, nm_u.offset, nm_u.read_noise, c) == (1.0, 0.0, 0.5, 0.25)
    u, nm_u, c = units.mapped(y, nm, "sqrt")
    assert (nm_u.gain, nm_u.read_noise, c) == (2.0, 1.0, 0.5)
    np.testing.assert_allclose(u / c + nm.offset, y)  # the map back
    u, nm_u, c = units.mapped(y, nm, "data")
    assert (nm_u.gain, nm_u.offset, c) == (4.0, 0.0, 1.0)


def test_units_benchmark_runs_end_to_end_tiny(tmp_path):
    out = tmp_path / "u.json"
    load_benchmark("units").main(["--tiny", "--datasets", "pairs", "--units",
                                  "photons,library", "--out", str(out)])
    for units in ("photons", "library"):
        res = json.loads(out.read_text())["datasets"]["pairs"][units]
        run = res["runs"][0]
        assert run["steps"] == 4 and len(run["images"]) == 5 and np.isfinite(res["psnr"])
        assert all(0.5 <= r["score_factor"] <= 1.25 for r in run["images"])
    with pytest.raises(SystemExit):
        load_benchmark("units").main(["--tiny", "--units", "kelvin"])
