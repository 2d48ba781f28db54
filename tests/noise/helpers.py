"""Admissible test data for any registered noise model (0-255 scale, as in the paper)."""

import torch

from scoredenoise.noise._mixture import GaussianMixtureModel


def clean_image(rng, shape=(24, 24), lo=30.0, hi=220.0):
    return rng.uniform(lo, hi, size=shape)


def admissible_case(model, rng, shape=(24, 24)):
    """Return (x_true, y, s) such that x_true solves s = f(x, y) for the model's equation.

    The score is built from a known root: s = f(x_true, y) for plain models and for mixtures
    solved exactly (``uses_exact``); for the other mixtures z is drawn from the base model,
    s = f_z(x_true, z) and y = z + offset - sigma^2 s, so that
    Algorithm 5's z_bar = y - offset + sigma^2 s equals z.
    """
    x = clean_image(rng, shape)
    if isinstance(model, GaussianMixtureModel) and model.uses_exact:
        y = model.sample(x, rng)  # the exact equation: s is the exact likelihood score
        return x, y, model.score(x, y)
    if isinstance(model, GaussianMixtureModel):
        z = model.base.sample(x, rng)
        s = model.base.score(x, z)
        y = z + model.offset_value - model.gaussian_sigma ** 2 * s
        return x, y, s
    y = model.sample(x, rng)
    return x, y, model.score(x, y)


def autograd_score(logp_fn, x, y):
    yt = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(x, dtype=torch.float64)
    logp_fn(xt, yt).sum().backward()
    return yt.grad.numpy()
