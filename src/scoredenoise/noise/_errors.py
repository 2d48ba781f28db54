"""The noise package's error (a leaf: every noise module raises it)."""


class NoiseModelError(ValueError):
    """Bad parameters or data for a noise model (a ``ValueError``)."""
