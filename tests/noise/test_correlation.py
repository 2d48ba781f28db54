import numpy as np
import pytest
import torch

from scoredenoise.noise import PAPER_KERNEL, Correlation, NoiseModelError


def test_adjoint_and_inverse_2d(rng):
    A = Correlation(PAPER_KERNEL)
    z, w = rng.normal(size=(2, 24, 20)), rng.normal(size=(2, 24, 20))
    assert np.vdot(A.apply(z), w) == pytest.approx(np.vdot(z, A.adjoint(w)), rel=1e-12)
    np.testing.assert_allclose(A.inverse(A.apply(z)), z, atol=1e-12)
    np.testing.assert_allclose(A.inverse_adjoint(A.adjoint(z)), z, atol=1e-12)


def test_apply_is_periodic_convolution(rng):
    """Against a direct sum over the kernel with wrap-around (scipy.ndimage mode='wrap')."""
    from scipy.ndimage import convolve
    A = Correlation(PAPER_KERNEL)
    k = np.array([[0.0, 0.1, 0.2], [0.05, 0.4, 0.1], [0.0, 0.1, 0.05]])
    B = Correlation(k)
    z = rng.normal(size=(12, 15))
    np.testing.assert_allclose(A.apply(z), convolve(z, A.as_array(), mode="wrap"), atol=1e-12)
    np.testing.assert_allclose(B.apply(z), convolve(z, k, mode="wrap"), atol=1e-12)


def test_3d_kernel_acts_on_volumes(rng):
    from scipy.ndimage import convolve
    k = np.zeros((3, 3, 3))
    k[1] = np.asarray(PAPER_KERNEL) * 0.8
    k[0, 1, 1] = k[2, 1, 1] = 0.05
    A = Correlation(k)
    v = rng.normal(size=(2, 8, 10, 12))  # (channel, z, y, x)
    out = A.apply(v)
    for c in range(2):
        np.testing.assert_allclose(out[c], convolve(v[c], k, mode="wrap"), atol=1e-12)
    np.testing.assert_allclose(A.inverse(out), v, atol=1e-10)


def test_2d_kernel_on_stack_acts_per_plane(rng):
    A = Correlation(PAPER_KERNEL)
    v = rng.normal(size=(5, 16, 16))
    out = A.apply(v)
    for i in range(5):
        np.testing.assert_allclose(out[i], A.apply(v[i]), atol=1e-12)


def test_torch_and_dtype(rng):
    A = Correlation(PAPER_KERNEL)
    t = torch.tensor(rng.normal(size=(16, 16)), dtype=torch.float32)
    out = A.inverse(A.apply(t))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, t, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel, match", [
    ([0.25, 0.5, 0.25], "not stably invertible"),
    (np.ones((3, 3)) / 9, "not stably invertible"),
    (np.zeros((3, 3)), "not stably invertible"),
    (np.ones((2, 3)), "odd"),
    (np.ones((3, 3, 3, 3)), "1D, 2D or 3D"),
    ([[1, 2], [3]], "rectangular array"),
])
def test_bad_kernels(kernel, match):
    with pytest.raises(NoiseModelError, match=match):
        Correlation(kernel)


def test_image_smaller_than_kernel():
    with pytest.raises(NoiseModelError, match="smaller than the correlation kernel"):
        Correlation(PAPER_KERNEL).apply(np.ones((2, 2)))
