"""The solve's surroundings (scoredenoise.solve): what a result records."""

import json

import scoredenoise as sd

from .test_model import untrained


def test_provenance_records_what_made_a_result():
    m = untrained()
    g = sd.get_noise_model("gaussian", sigma=10.0)
    md = sd.provenance(m, g, sigma_a=m.sigma_a_default, units="input", source="cells",
                       model_source="m.sdmodel", planes_done=3)
    assert md["source"] == "cells" and md["kind"] == "denoised" and md["units"] == "input"
    assert md["noise_model_chosen"] == g.to_dict() and md["model"] == "m.sdmodel"
    assert md["noise_model"] == sd.api.effective_noise_model(
        m, g, 0, m.sigma_a_default).to_dict()
    assert md["planes_done"] == 3 and md["version"] == sd.__version__
    json.dumps(md)  # JSON-ready
    two = sd.provenance(m, (g, g.replace(sigma=5.0)), sigma_a=m.sigma_a_default)
    assert [d["params"]["sigma"] for d in two["noise_model_chosen"]] == [10.0, 5.0]
    direct = sd.ScoreModel(m.network, offset=m.offset, scale=m.scale, kind="denoiser",
                           meta={"training": {"objective": "neighbor2neighbor"}})
    md = sd.provenance(direct, g, source="cells")
    assert md["noise_model"] is None and md["method"] == "neighbor2neighbor"
