"""Solving with the exact marginal score gives the estimator theory predicts."""

import numpy as np
import pytest
from scipy.special import digamma

from scoredenoise.noise import Gamma, Gaussian, GaussianCorrelated, Poisson


def test_gaussian_prior_gaussian_noise_gives_posterior_mean():
    mu, tau, sigma = 100.0, 30.0, 20.0
    y = np.linspace(0, 255, 101)
    s = -(y - mu) / (tau ** 2 + sigma ** 2)  # score of the marginal N(mu, tau^2 + sigma^2)
    post_mean = (tau ** 2 * y + sigma ** 2 * mu) / (tau ** 2 + sigma ** 2)
    np.testing.assert_allclose(Gaussian(sigma=sigma).solve(y, s), post_mean, rtol=1e-12)


@pytest.mark.parametrize("white", [0.0, 7.0])
def test_correlated_gaussian_prior_posterior_mean(white):
    """x ~ N(mu, tau^2 I), eps ~ N(0, sigma^2 A^T A + w^2 I): posterior mean via Eq. (5)."""
    m = GaussianCorrelated(sigma=20.0, white_sigma=white)
    A = m.operator
    mu, tau = 100.0, 30.0
    y = np.random.default_rng(0).normal(100, 40, size=(16, 16))
    # marginal covariance C = tau^2 I + sigma^2 A^T A is diagonal in Fourier space
    h = np.fft.fft2(A._centred(A.as_array(), y.shape))
    c = tau ** 2 + m.sigma ** 2 * np.abs(h) ** 2 + white ** 2
    s = -np.real(np.fft.ifft2(np.fft.fft2(y - mu) / c))
    post = mu + np.real(np.fft.ifft2(tau ** 2 * np.fft.fft2(y - mu) / c))
    np.testing.assert_allclose(m.solve(y, s), post, rtol=1e-9)


def test_poisson_conjugate_gamma_prior_gives_exp_mean_log():
    """x ~ Gamma(a0, rate beta), y = Poisson(lam x)/lam: solve -> exp(E[log x | y]).

    The marginal of the counts is negative binomial; its score in y is
    lam * (psi(a0 + k) - psi(k + 1) + log(lam / (beta + lam))). With the paper's
    approximation psi(k + 1) ~ log(k + 1/2) (the same one the likelihood uses) the solver
    returns exp(psi(a0 + k) - log(beta + lam)) = exp(E[log x | y]) exactly; with the exact
    digamma it is off by exactly exp(log(k + 1/2) - psi(k + 1)).
    """
    a0, beta, lam = 3.0, 0.05, 0.2
    k = np.arange(0, 200, dtype=float)
    y = k / lam
    e_log_x = digamma(a0 + k) - np.log(beta + lam)
    common = digamma(a0 + k) + np.log(lam / (beta + lam))
    s_approx = lam * (common - np.log(k + 0.5))
    s_exact = lam * (common - digamma(k + 1))
    m = Poisson(lam=lam)
    np.testing.assert_allclose(m.solve(y, s_approx), np.exp(e_log_x), rtol=1e-10)
    ratio = m.solve(y, s_exact) / np.exp(e_log_x)
    np.testing.assert_allclose(ratio, np.exp(np.log(k + 0.5) - digamma(k + 1)), rtol=1e-10)
    assert abs(ratio[10:] - 1).max() < 1e-3  # the approximation is negligible past 10 counts


def test_gamma_noise_conjugate_prior_on_inverse_gives_harmonic_posterior_mean():
    """1/x ~ Gamma(a0, rate beta), y = x * Gamma(alpha, alpha): solve -> 1 / E[1/x | y]."""
    alpha, a0, beta = 26.0, 4.0, 300.0
    y = np.linspace(1.0, 255.0, 200)
    # p(y) ~ y^(alpha-1) (beta + alpha y)^-(alpha + a0)
    s = (alpha - 1) / y - alpha * (alpha + a0) / (beta + alpha * y)
    inv_post_mean = (a0 + alpha) / (beta + alpha * y)
    np.testing.assert_allclose(Gamma(alpha=alpha).solve(y, s), 1 / inv_post_mean, rtol=1e-12)
