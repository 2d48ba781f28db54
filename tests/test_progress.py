"""The one progress and cancellation protocol (scoredenoise._progress)."""

import threading

import numpy as np
import pytest
import tifffile

from scoredenoise import Cancelled
from scoredenoise._progress import cancel_requested, report, with_cancel
from scoredenoise.to_file import denoise_to_file

from .test_model import untrained


def test_a_cancel_flag_is_folded_into_the_progress_callback():
    seen = []
    event = threading.Event()
    progress = with_cancel(lambda d, t: seen.append((d, t)), event)
    report(progress, 1, 3)  # not set: passes, and the counts reach the callback
    event.set()
    with pytest.raises(Cancelled, match="cancelled after 2 of 3"):
        report(progress, 2, 3)
    assert seen == [(1, 3), (2, 3)]
    # a callable flag, no callback of its own; training's logs pass through
    flag = with_cancel(None, lambda: True)
    assert flag(1, 2, {"loss": 0.1}) is False
    assert with_cancel(print, None) is print  # nothing to fold
    assert not cancel_requested(None) and cancel_requested(lambda: 1)


def test_progress_returning_false_stops_a_file_like_cancel_and_it_resumes(tmp_path):
    """denoise_to_file heard only its cancel flag; a progress callback's False (the
    protocol of train and estimate_noise) was ignored."""
    m = untrained()
    y = np.random.default_rng(0).poisson(50, (2, 64, 64)).astype(np.uint16)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, y, imagej=True, metadata={"axes": "TYX"})
    out = tmp_path / "out.tif"
    with pytest.raises(Cancelled, match="cancelled after 2 of 4 chunks"):
        denoise_to_file(src, out, m, "gaussian", sigma=5.0, chunks={"Y": 32, "X": 64},
                        progress=lambda d, t: d < 2)
    assert not out.exists()
    r = denoise_to_file(src, out, m, "gaussian", sigma=5.0, chunks={"Y": 32, "X": 64})
    assert (r.chunks_resumed, r.chunks_computed) == (2, 2)
