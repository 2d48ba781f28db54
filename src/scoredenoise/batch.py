"""Many files, one after another or on a dask.distributed cluster
(:func:`scoredenoise.denoise_files`): each file goes through :func:`denoise_to_file`; one bad
file is reported and the others go on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ._progress import Cancelled
from .model import ScoreModel, model_from_bytes
from .to_file import denoise_to_file

__all__ = ["denoise_files", "make_client"]


_WORKER_MODELS: dict = {}


def _worker_denoise(blob: bytes, source, output, kwargs: dict) -> dict:
    """Runs on a dask worker: the model arrives once per worker (a scattered, broadcast
    buffer) and is kept loaded for the next files."""
    import time

    import torch

    key = hashlib.sha256(blob).hexdigest()
    if key not in _WORKER_MODELS:
        _WORKER_MODELS.clear()
        _WORKER_MODELS[key] = model_from_bytes(blob)
        try:  # one worker's threads, not the machine's: workers share the cores
            from distributed import get_worker

            torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
        except (ImportError, ValueError, AttributeError):
            pass
    t0 = time.perf_counter()
    r = denoise_to_file(source, output, _WORKER_MODELS[key], **kwargs)
    return {"chunks": r.chunks_total, "computed": r.chunks_computed,
            "resumed": r.chunks_resumed, "seconds": time.perf_counter() - t0,
            "noise_model": r.noise_model, "noise_estimate": r.noise_estimate}


def denoise_files(jobs, model: ScoreModel, *, client=None, on_done=None, **kwargs) -> list:
    """Denoise many files, each streamed by :func:`denoise_to_file`.

    Parameters
    ----------
    jobs : list of (source, output)
    model : ScoreModel
    client : distributed.Client, optional
        Run the files in parallel on this cluster's workers (one file per task; the model is
        sent once to each worker). Default: one after the other in this process.
    on_done : callable(source, output, result_or_exception), optional
        Called as each file finishes (in completion order on a cluster).
    **kwargs
        Passed to :func:`denoise_to_file` (noise_model, params, chunks, dtype, ...).

    Returns
    -------
    list of dict
        Per file, in the order of ``jobs``: source, output, ok, error, chunks, seconds, and
        the noise model solved with (and its estimates with ``estimate_noise=True``).
    """
    import time

    outs = [Path(o).resolve() for _, o in jobs]
    twice = sorted({str(o) for o in outs if outs.count(o) > 1})
    if twice:
        raise ValueError(f"several inputs would write the same output: {', '.join(twice)}; "
                         f"give each input its own output")
    rows = [{"source": str(s), "output": str(o), "ok": False, "error": None}
            for s, o in jobs]
    if client is None:
        for row, (s, o) in zip(rows, jobs):
            t0 = time.perf_counter()
            try:
                r = denoise_to_file(s, o, model, **kwargs)
                row.update(ok=True, chunks=r.chunks_total, computed=r.chunks_computed,
                           resumed=r.chunks_resumed, seconds=time.perf_counter() - t0,
                           noise_model=r.noise_model, noise_estimate=r.noise_estimate)
                res = r
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 (one bad file must not stop the others)
                row["error"] = f"{type(exc).__name__}: {exc}"
                res = exc
            if on_done is not None:
                on_done(s, o, res)
        return rows
    from distributed import as_completed

    kwargs.pop("progress", None)  # per-chunk callbacks do not cross processes
    # hash=False: a unique key per call. Scattering the same bytes again would reuse the
    # content-hashed key of an earlier call's future while the scheduler is releasing it, and
    # the tasks then fail with "lost dependencies" (dask/distributed#8576).
    blob = client.scatter(model.to_bytes(), broadcast=True, hash=False)
    futures = {client.submit(_worker_denoise, blob, s, o, kwargs, pure=False): i
               for i, (s, o) in enumerate(jobs)}
    for fut in as_completed(futures):
        i = futures[fut]
        try:
            res = fut.result()
            rows[i].update(ok=True, **res)
        except Exception as exc:  # noqa: BLE001 (reported; the other files go on)
            res = exc
            rows[i]["error"] = f"{type(exc).__name__}: {exc}"
        if on_done is not None:
            on_done(jobs[i][0], jobs[i][1], res)
    return rows


def make_client(scheduler: str | None = None, workers: int | None = None):
    """A dask.distributed client: to ``scheduler`` (an address such as
    ``tcp://10.0.0.5:8786``, or a scheduler JSON file), or to a new local cluster of
    ``workers`` processes sharing this machine's cores. Needs ``pip install distributed``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("running on a cluster needs dask.distributed: "
                          "pip install 'scoredenoise[cluster]'") from None
    if scheduler:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler)
        return Client(scheduler)
    if workers is None or workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=None)
    return Client(cluster)
