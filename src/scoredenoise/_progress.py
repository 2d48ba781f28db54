"""Progress and cancellation, the ground floor every long operation shares.

One protocol: a progress callback is called as ``progress(done, total)`` (training adds the
step's logs); returning ``False`` asks the operation to stop, which then raises
:class:`Cancelled` (training returns the model trained so far). A ``cancel`` flag (a
``threading.Event`` or a callable, as GUIs hold) is the same request: :func:`with_cancel`
folds it into the progress callback at the public edge, so the engine checks one thing.
:class:`ProgressBar` turns those calls into a tqdm bar (the CLI and the demo).
"""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(done, total) -> False to cancel``
ProgressFn = Callable[[int, int], "bool | None"]


class Cancelled(RuntimeError):
    """Raised when a progress callback asks to stop (returns False)."""


def cancel_requested(cancel) -> bool:
    """Whether ``cancel`` (None, a ``threading.Event`` or a callable) asks to stop."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set is not None else cancel())


def with_cancel(progress: ProgressFn | None, cancel) -> ProgressFn | None:
    """``progress`` that also answers False once ``cancel`` is set: the one protocol."""
    if cancel is None:
        return progress

    def checked(done, total, *logs):
        answer = None if progress is None else progress(done, total, *logs)
        return False if answer is False or cancel_requested(cancel) else answer

    return checked


def report(progress: ProgressFn | None, done: int, total: int) -> None:
    """Tell ``progress`` how far the work is; raise :class:`Cancelled` if it says stop."""
    if progress is not None and progress(done, total) is False:
        raise Cancelled(f"cancelled after {done} of {total}")


class ProgressBar:
    """A tqdm progress bar fed by the engine's progress callbacks (``quiet``: silent)."""

    def __init__(self, desc, quiet=False, unit=None):
        from tqdm.auto import tqdm  # deferred: only the CLI and the demo draw bars

        self._tqdm = tqdm
        self.desc, self.quiet, self.bar, self.unit = desc, quiet, None, unit

    def __call__(self, done, total, logs=None):
        if self.quiet:
            return None
        if self.bar is None:
            self.bar = self._tqdm(total=total, desc=self.desc, unit=self.unit or (
                "step" if logs is not None else "tile"), dynamic_ncols=True)
        self.bar.n = done
        if logs:
            post = {"loss": f"{logs['loss']:.4f}"}
            if logs.get("sigma_a") is not None:  # an annealed (unconditioned) schedule
                post["sigma_a"] = f"{logs['sigma_a']:.1e}"
            if "val_loss" in logs:
                post["val"] = f"{logs['val_loss']:.4f}"
            self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
