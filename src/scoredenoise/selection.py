"""Blind selection of noise parameters with a trained model and a cached score: each
candidate is solved without the network and scored by a criterion on the result. It needs a
score model, so it sits above the estimators (:mod:`scoredenoise.estimate` measures the data
alone) and beside the public API."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .api import denoise
from .noise import NoiseModel, NoiseModelError
from .solve import resolve_noise_model

__all__ = ["select_noise_parameters", "Selection"]


@dataclass
class Selection:
    """Result of :func:`select_noise_parameters`.

    Attributes
    ----------
    noise_model : NoiseModel
        The model with the selected parameters.
    criterion : str
        The criterion minimised.
    grid : dict
        For each searched parameter, the values tried (last sweep) and the criterion there.
    """

    noise_model: NoiseModel
    criterion: str
    grid: dict


def _total_variation(x: np.ndarray) -> float:
    """Mean absolute difference between neighbours along the last two axes (anisotropic TV)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.abs(np.diff(x, axis=-1)).mean() + np.abs(np.diff(x, axis=-2)).mean())


def select_noise_parameters(image, model, noise_model, *, score, params=None,
                            span: float = 4.0, n_grid: int = 17, sweeps: int = 2,
                            axes: str | None = None) -> Selection:
    """Choose unknown noise parameters blindly, re-solving with a cached score.

    Noise2Score's criterion (Kim and Ye, 2021): among candidate parameters, choose those whose
    solution has the least total variation. Too little assumed noise leaves noise (high TV);
    too much over-corrects and inverts it (high TV again); the minimum sits near the true
    level. Each candidate costs only a solve, not a network evaluation. Parameters are searched
    one at a time on a log grid ``value / span ... value * span`` around the starting model,
    ``sweeps`` times.

    Parameters
    ----------
    image : numpy.ndarray
        The noisy image the score was computed on.
    model : ScoreModel
        The trained model (its smoothing is removed as in :func:`scoredenoise.denoise`).
    noise_model : NoiseModel, str or dict
        Starting point; e.g. the output of :func:`estimate_noise`, or the registry default.
    score : numpy.ndarray
        ``model.score(image)``.
    params : sequence of str, optional
        Parameters to search; default: the model's ``estimable`` ones.

    Returns
    -------
    Selection
    """
    nm = resolve_noise_model(noise_model)
    meta = {p.name: p for p in nm.parameters()}
    params = tuple(params or (p for p in nm.estimable if meta[p].kind == "float"))
    if not params:
        raise NoiseModelError(f"{nm.name}: name the parameters to search with params=")
    for p in params:
        if p not in meta or meta[p].kind != "float":
            raise NoiseModelError(f"{nm.name}: cannot search {p!r}; choose from "
                                  f"{[q for q in meta if meta[q].kind == 'float']}")
    grid = {}
    for _ in range(sweeps):
        for p in params:
            v0 = float(getattr(nm, p)) or 1.0
            values = v0 * np.geomspace(1 / span, span, n_grid)
            crit = []
            for v in values:
                try:
                    cand = nm.replace(**{p: float(v)})
                    x = denoise(image, model, cand, score=score, axes=axes)
                    crit.append(_total_variation(x))
                except NoiseModelError:
                    crit.append(np.inf)
            crit = np.asarray(crit)
            nm = nm.replace(**{p: float(values[int(np.argmin(crit))])})
            grid[p] = {"values": values.tolist(), "criterion": crit.tolist()}
        span = math.sqrt(span)
    return Selection(nm, "total variation of the solution (Noise2Score)", grid)
