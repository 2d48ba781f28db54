"""The camera model's variance-stabilising transform (generalized Anscombe), used to sample
posteriors of camera data (scoredenoise.langevin)."""

import numpy as np
import pytest

from scoredenoise.noise import PoissonGaussian


@pytest.mark.parametrize("gain,read", [(3.8, 1.0), (27.6, 8.4), (1.0, 3.0)])
def test_transformed_noise_is_unit_and_centred_on_the_clean_transform(gain, read):
    """stabilise(y) = stabilise_clean(x) + noise of mean 0 (to 0.01 of its std, at 0.3 to
    2000 photo-electrons) and variance 1 (within 5 % from 3 photo-electrons up)."""
    cam = PoissonGaussian(gain=gain, offset=3.5, read_noise=read)
    for photons in (0.3, 1.0, 3.0, 10.0, 100.0, 399.0, 401.0, 2000.0):
        x = np.full(200_000, photons * gain)
        t = cam.stabilise(cam.sample(x, rng=0))
        centre = float(cam.stabilise_clean(x[:1] + 3.5)[0])
        assert abs(t.mean() - centre) < 0.01, photons
        if photons >= 3:
            assert t.var() == pytest.approx(1.0, abs=0.05), photons
    if read < gain:  # the plain transform of the clean value is biased at few photons
        x = np.full(200_000, 1.0 * gain)
        assert cam.stabilise(cam.sample(x, rng=0)).mean() - cam.stabilise(x[:1] + 3.5)[0] < -0.1


def test_unstabilise_inverts_the_clean_transform():
    cam = PoissonGaussian(gain=3.8, offset=3.5, read_noise=1.0)
    x = np.array([3.5, 4.0, 20.0, 100.0, 1519.0, 1525.0, 7600.0, 1e5])  # ADU, the offset incl.
    np.testing.assert_allclose(cam.unstabilise(cam.stabilise_clean(x)), x, rtol=1e-9)
    # below the transform of no signal: no signal (the offset), never negative photons
    low = cam.stabilise_clean(np.array([3.5]))[0]
    np.testing.assert_array_equal(cam.unstabilise(np.array([low - 1, -5.0])), [3.5, 3.5])
    assert np.all(np.diff(cam.stabilise_clean(np.linspace(0, 3000, 2000))) >= 0)
