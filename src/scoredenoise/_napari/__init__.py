"""napari plugin of scoredenoise (installed with ``pip install scoredenoise[napari]``).

The widgets hold no algorithm: they call the public API (``scoredenoise.train``,
``ScoreModel.score``, ``scoredenoise.denoise``) in worker threads.
"""
