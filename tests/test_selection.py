"""Blind selection of noise parameters with a cached score (scoredenoise.selection)."""

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.network import build_network
from scoredenoise.noise import NoiseModelError, get_noise_model

from .test_estimate import _scene


def test_blind_selection_finds_the_noise_level_with_a_cached_score():
    # an oracle score, s = (x - y) / sigma^2: the TV criterion must pick sigma
    x = 100 + _scene(192, peak=100.0)
    sigma = 8.0
    y = get_noise_model("gaussian", sigma=sigma).sample(x, rng=0).astype(np.float32)
    score = ((x - y) / sigma ** 2).astype(np.float32)
    model = sd.ScoreModel(build_network("small"), offset=[0.0], scale=[1.0])
    assert model.smoothing_sigma() == 0
    sel = sd.select_noise_parameters(y, model, get_noise_model("gaussian", sigma=2.0),
                                     score=score)
    assert sel.noise_model.sigma == pytest.approx(sigma, rel=0.1)
    assert len(sel.grid["sigma"]["values"]) == 17
    with pytest.raises(NoiseModelError, match="cannot search 'kernel'"):
        sd.select_noise_parameters(y, model, "gaussian-correlated", score=score,
                                   params=("kernel",))
