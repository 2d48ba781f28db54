"""Step 3: denoise a layer over a chosen scope (a magicgui container). Scores are kept, so a
new noise model or new parameters re-solve at once, without the network."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import notifications
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QMessageBox

import scoredenoise as sd
from scoredenoise.io import default_chunks

from ._session import (
    Progress,
    follow_layers,
    full_resolution,
    geometry,
    get_session,
    layer_axes,
    layer_choices,
    plane_shown,
)
from ._ui import Step, form, row, wrapped_label
from ._uncertainty import UncertaintyScopes

#: Z slices per chunk of a lazy layer denoised by a 3D network (a 2D network: one plane)
LAZY_DEPTH = 16


class DenoiseWidget(UncertaintyScopes, Step):
    """Denoise a layer; re-solve at once when the noise model changes (cached score)."""

    def __init__(self, napari_viewer):
        super().__init__(labels=False)  # full-width rows; fields in forms
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.cache: dict = {}  # (layer name, plane index) -> (y, score)
        self.sigma_a: dict = {}  # layer name -> the sigma_a its scores are evaluated at
        self.output = None
        self.worker = None
        self._cancel = threading.Event()
        self.native.destroyed.connect(self._cancel.set)  # a closed dock cancels its work
        self._progress = Progress()
        self._progress.step.connect(self._on_step)
        self._progress.call.connect(lambda f: f())
        self.last_solve_seconds = None
        self.running = False  # a worker is computing (scores, sigma_a, a file)
        self._resolving = False  # a worker re-solves cached planes (no network)
        self._resolve_cancel = threading.Event()
        self.native.destroyed.connect(self._resolve_cancel.set)
        self._resolve_again = None  # the layer to re-solve when it ends (newer parameters)
        self._resolve_worker = None
        self.chunk_cache = sd.ChunkCache()
        self.lazy = None  # the lazy result: source name, image, score
        self.prior = None  # the score of clean images (train(objective="prior"))
        self.prior_source = None

        self.layer = ComboBox(label="image layer", annotation=Image,
                              choices=layer_choices(napari_viewer),
                              tooltip="the layer to denoise (the plugin's own results are not "
                                      "offered)")
        self.live = CheckBox(text="update when the noise model changes", value=True, label="",
                             tooltip="a changed noise model or parameter re-solves the result "
                                     "at once from the kept scores (no network)")
        self.signal = CheckBox(
            text="signal above the camera offset", label="",
            tooltip="unchecked (default): results in the layer's own units, comparable with "
                    "the raw data (a camera model's offset included); checked: the signal "
                    "above the camera offset. Recorded in the result's metadata")
        self.tta = CheckBox(
            text="average 8 orientations (8x the network's time)", label="",
            tooltip="test-time augmentation: the network's output averaged over the 8 "
                    "rotations and flips of each plane; +0.1 to +0.3 dB on the real data of "
                    "docs/benchmarks.md. Set by each model to its default: on for the small "
                    "network trained for photon-starved data (cheap), off for larger ones. "
                    "Scores computed before are computed again. Recorded in the result's "
                    "metadata")
        #: one Denoise action; what it covers is a choice (label, method, tooltip)
        self.scopes = {
            "plane shown": (self.preview, ("the plane on screen, in a second or two: tune the "
                            "noise model on it (it re-solves at once when the model changes)")),
            "whole layer": (self.denoise_all, ("every plane of the layer, held in memory")),
            "lazy layer (as you browse)": (
                self.lazy_layer, ("for stacks larger than memory: a layer whose planes are "
                "computed when shown, and kept for re-solving")),
            "whole layer to file": (
                self.denoise_to_file, ("stream the whole layer to a .tif or .zarr chunk by "
                "chunk (resumable), then show the file")),
            "posterior std of the plane shown": (
                self.std_map, ("how sure the result is, pixel by pixel: the posterior standard "
                "deviation as a layer beside the result (noise models without a correlation "
                "kernel; 8 network passes; docs/uncertainty.md)")),
            "posterior std of the whole layer": (
                lambda: self.std_map(all_planes=True), ("the posterior standard deviation of "
                "every plane, in a worker with progress and Cancel (9 network passes a "
                "plane); the planes done before a Cancel stay")),
            "posterior samples of the plane shown (needs a prior)": (
                self.samples, ("stochastic denoising: several equally plausible clean images "
                "and their per-pixel spread (annealed Langevin dynamics; gaussian noise "
                "model; a prior trained on clean images: train --objective prior)")),
        }
        self.scope = ComboBox(label="scope", choices=list(self.scopes),
                              tooltip="what the Denoise button covers")
        # the list is as wide as its longest scope; the box itself need not be
        self.scope.native.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.scope.native.setMinimumContentsLength(16)
        for i, (_, tip) in enumerate(self.scopes.values()):
            self.scope.native.setItemData(i, tip, Qt.ToolTipRole)
        self.file_path = FileEdit(label="output file", mode="w",
                                  filter="TIFF or zarr (*.tif *.tiff *.zarr)",
                                  tooltip="a .tif, .tiff or .zarr; an existing file is "
                                          "replaced only after you confirm")
        self.file_path.line_edit.native.setPlaceholderText("output .tif or .zarr")
        self.prior_btn = PushButton(
            text="Load prior...",
            tooltip="a model trained on clean images (frame averages) with objective 'prior': "
                    "the score of clean images at every noise level, which posterior samples "
                    "need")
        self.prior_label = Label(value="no prior")
        self.n_samples = SpinBox(min=1, max=64, value=4,
                                 tooltip="samples drawn together (one network batch)")
        self.n_samples.label = "samples"
        self.prior_row = form(row(self.prior_btn, self.prior_label), self.n_samples)
        self.prior_row.label = "prior"
        self.denoise_btn = PushButton(text="Denoise",
                                      tooltip="denoise the chosen layer with the current "
                                              "model and noise model, over the chosen scope")
        self.cancel_btn = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(min=0, max=1, value=0)
        self.status = wrapped_label(label="")
        self.extend([form(self.layer), self.live, self.signal, self.tta,
                     form(self.scope, self.file_path, self.prior_row), self.denoise_btn,
                     row(self.bar, self.cancel_btn),
                     self.status])
        self.end()

        # scores computed with the other setting are not reused
        self.tta.changed.connect(lambda *_: self.cache.clear())
        self.signal.changed.connect(self._noise_changed)
        self.scope.changed.connect(self._scope_changed)
        self.denoise_btn.clicked.connect(self.denoise)
        self.prior_btn.clicked.connect(lambda: self.load_prior())
        self.cancel_btn.clicked.connect(self._cancel.set)
        self.cancel_btn.clicked.connect(self._resolve_cancel.set)
        self._scope_changed(self.scope.value)
        follow_layers(napari_viewer, [self])
        self.session.noise_changed.connect(self._noise_changed)
        self.session.model_changed.connect(lambda *_: (self.cache.clear(),
                                                       self.sigma_a.clear(),
                                                       self._model_tta()))
        self.reset_choices()

    def _model_tta(self):
        """A new model sets the box to its own default (``tta="auto"``: on for the small
        network trained for photon-starved data, where the 8 passes are cheap)."""
        if self.session.model is not None:
            self.tta.value = self.session.model.tta_default

    def _say(self, text: str):
        self.status.value = text

    def denoise(self):
        """The Denoise action over the chosen scope."""
        self.scopes[self.scope.value][0]()

    def _scope_changed(self, label):
        self.file_path.visible = label == "whole layer to file"
        self.prior_row.visible = label.startswith("posterior samples")
        self.denoise_btn.tooltip = self.scopes[label][1]

    def _source(self):
        model = self.session.model
        if model is None:
            raise ValueError("no model: train one or load a model file in the Train widget")
        ly = self.layer.value
        if ly is None:
            raise ValueError("no image layer to denoise")
        if model.channels != 1:
            raise ValueError(f"the model has {model.channels} channels; the napari widget "
                             f"denoises single-channel layers (use the Python API)")
        layer_axes(ly, model.dims)  # RGB or too few dimensions: a clear error
        return ly, model

    def _planes(self, ly, model, all_planes):
        lead = ly.data.ndim - model.dims
        if all_planes:
            return [tuple(i) for i in np.ndindex(*ly.data.shape[:lead])]
        return [plane_shown(self.viewer, ly, lead)]

    def _score_plane(self, ly, model, idx, tta=False):
        """The plane and the network's output: its score (score models), or the denoised
        plane itself (direct denoisers of the related methods, which have no solve). A
        sigma-conditioned score is evaluated at one sigma_a per layer, chosen on a sample of
        the layer under the noise model of the time (SURE, a few seconds) and kept."""
        y = np.asarray(ly.data[idx], dtype=np.float32)
        if ly.name not in self.sigma_a:  # (a fixed one, at once, for other networks)
            self.sigma_a[ly.name] = model.resolve_sigma_a(
                full_resolution(ly), "auto", self.session.noise_model,
                axes=layer_axes(ly, model.dims))
        sig = self.sigma_a[ly.name] if model.conditioned else "auto"  # (fixed)
        return y, model.evaluate(y, axes="ZYX"[-model.dims:], sigma_a=sig, tta=tta)

    def _checked_source(self, in_memory=False):
        try:
            ly, model = self._source()
        except ValueError as exc:
            notifications.show_error(str(exc))
            return None
        if in_memory and getattr(ly, "multiscale", False):  # the result would be held whole
            notifications.show_error(
                f"layer {ly.name!r} is multiscale (a pyramid of a large image): use the scope "
                f"'lazy layer (as you browse)', which computes the planes shown, or 'whole "
                f"layer to file'")
            return None
        return ly, model

    def preview(self):
        """Score the plane (or volume) shown in a worker (progress, cancel), then solve; the
        score is kept for live re-solving."""
        self._score_planes(all_planes=False)

    def denoise_all(self):
        """Score every plane in a worker (progress, cancel), then solve."""
        self._score_planes(all_planes=True)

    def _score_planes(self, all_planes):
        src = self._checked_source(in_memory=True)
        if src is None:
            return
        ly, model = src
        planes = [p for p in self._planes(ly, model, all_planes)
                  if (ly.name, p) not in self.cache]

        nm, units = self.session.noise_model, self.units()
        tta = self.tta.value  # read here: workers do not touch widgets
        kept = [(idx, y, s) for (name, idx), (y, s) in self.cache.items() if name == ly.name]

        def run():  # the scores, then the solve of every plane, all in the worker
            out = {}
            for i, idx in enumerate(planes):
                if self._cancel.is_set():
                    raise sd.Cancelled(f"cancelled after {i} of {len(planes)} planes")
                out[(ly.name, idx)] = self._score_plane(ly, model, idx, tta)
                self._progress.step.emit(i + 1, len(planes), None)
            items = kept + [(idx, y, s) for (_, idx), (y, s) in out.items()]
            return out, self._solve_cached(items, model, nm, units)

        def done(result):
            scores, solved = result
            self.cache.update(scores)
            self._apply_solved(ly, model, nm, units, *solved)
            if self.session.noise_model != nm or self.units() != units:
                self._resolve(ly)  # changed while it ran: the last parameters win

        if not planes:  # all kept: only the solve, without the network
            self._resolve(ly)
            return
        self._start(run, done, f"computing the score of {len(planes)} plane(s) of "
                               f"{ly.name} ...")

    def _start(self, run, done, status):
        """Run ``run`` in a worker thread with the bar and Cancel; ``done(result)`` in the GUI
        thread. The action buttons wait until it ends (one job at a time)."""
        self._cancel.clear()
        # errors (and Cancelled) go to our handler, not re-raised in the event loop
        self.worker = create_worker(run, _connect={"errored": self._failed},
                                    _start_thread=False)
        self.worker.returned.connect(done)
        self.worker.finished.connect(lambda: self._busy(False))
        self.bar.native.setRange(0, 0)  # busy until the first step is reported
        self._busy(True)
        self._say(status)
        self.worker.start()

    def _busy(self, busy):
        self.running = busy
        self.cancel_btn.enabled = busy
        self.denoise_btn.enabled = not busy
        self.scope.enabled = not busy
        if not busy:
            self.bar.native.setRange(0, max(self.bar.native.maximum(), 1))

    # ----- large stacks: a lazy layer, and the whole stack to a file

    @staticmethod
    def _layer_array(ly):
        """The layer's full-resolution data as a dask array (lazy data stays lazy)."""
        import dask.array as da

        data = full_resolution(ly)
        if isinstance(data, da.Array):
            return data
        return da.from_array(data, chunks=default_chunks(data.shape, sd.default_axes(data.ndim),
                                                         depth=1), asarray=False)

    def lazy_layer(self):
        """A layer whose chunks are computed when napari shows them (only the visible planes:
        chunks of one plane for a 2D model); computed scores are kept, so new noise
        parameters re-solve without the network. The sigma_a choice (a few network passes
        on a sample) runs in a worker; the click returns at once."""
        src = self._checked_source()
        if src is None:
            return
        ly, model = src
        axes = layer_axes(ly, model.dims)
        image = self._layer_array(ly)
        image = image.rechunk(default_chunks(image.shape, axes, depth=1 if model.dims == 2
                                             else LAZY_DEPTH))
        nm = self.session.noise_model

        def run():  # an unconditioned network's sigma_a is fixed ("auto" returns it)
            if not model.conditioned:
                return "auto"
            return model.resolve_sigma_a(image, "auto", nm, axes=axes,
                                         progress=self._step_or_cancel)

        def done(sigma_a):
            cache = sd.ChunkCache()
            # the lazy score (a direct denoiser's lazy result), computed as napari shows it
            score = model.evaluate(image, axes=axes, cache=cache, sigma_a=sigma_a,
                                   tta=self.tta.value)
            img = image.rechunk(score.chunks)
            self.chunk_cache = cache
            self.lazy = {"source": ly.name, "image": img, "score": score, "axes": axes,
                         "tta": self.tta.value}
            self._lazy_resolve()

        self._start(run, done, f"choosing sigma_a for {ly.name} ...")

    def _step_or_cancel(self, done, total):
        """A progress callback for the engine, from a worker: the bar, and False to cancel."""
        self._progress.step.emit(done, total, None)
        return not self._cancel.is_set()

    def _lazy_resolve(self):
        lz = self.lazy
        model, nm = self.session.model, self.session.noise_model
        units = self.units()
        out = sd.denoise(lz["image"], model, nm, score=lz["score"], axes=lz["axes"],
                         units=units, tta=lz["tta"])
        name = f"{lz['source']} denoised (lazy)"
        sig = getattr(lz["score"], "sigma_a", None)
        md = {"scoredenoise": sd.provenance(model, nm, sigma_a=sig, units=units,
                                            source=lz["source"], lazy=True, tta=lz["tta"],
                                            model_source=self.session.model_source)}
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = out
            layer.metadata.update(md)
        else:
            src = self.viewer.layers[lz["source"]]
            self.viewer.add_image(out, name=name, metadata={**dict(src.metadata), **md},
                                  contrast_limits=src.contrast_limits,
                                  colormap=src.colormap.name, **geometry(src))
            self.reset_choices()
        self._say(f"{nm.name}: lazy layer; {self.chunk_cache.computed} chunk(s) "
                            f"computed so far")

    def denoise_to_file(self, path=None):
        """Stream the whole layer to ``path`` (from its file when it has one) in a worker,
        with progress and cancel; then show the file-backed result."""
        src = self._checked_source()
        if src is None:
            return
        ly, model = src
        path = Path(path or self.file_path.line_edit.value.strip())
        if not str(path) or path.suffix.lower() not in (".tif", ".tiff", ".zarr"):
            notifications.show_error("give an output file ending in .tif, .tiff or .zarr")
            return
        nm = self.session.noise_model
        source_file = getattr(getattr(ly, "source", None), "path", None)
        source = source_file if source_file and Path(source_file).exists() and not \
            getattr(ly, "multiscale", False) else self._layer_array(ly)
        axes = layer_axes(ly, model.dims)
        # an existing file is replaced only when the user says so (never a folder, never
        # the input: the engine refuses those)
        overwrite = path.exists() and not path.is_dir()
        if overwrite and not self._confirm_overwrite(path):
            self._say(f"{path} exists: kept, nothing written")
            return
        units, tta = self.units(), self.tta.value  # workers do not touch widgets

        def run():
            return sd.denoise_to_file(
                source, path, model, nm, axes=axes, overwrite=overwrite, cancel=self._cancel,
                units=units, tta=tta,
                progress=lambda d, t: self._progress.step.emit(d, t, None),
                metadata={"model": self.session.model_source, "napari_layer": ly.name})

        self._start(run, lambda res: self._show_file(res, ly), f"writing {path} ...")

    def _confirm_overwrite(self, path) -> bool:
        """Ask before replacing an existing file (No is the default)."""
        answer = QMessageBox.question(
            self.native, "Replace the file?", f"{path} exists.\nReplace it with the denoised "
            f"result?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _show_file(self, res, ly):
        img = sd.open_image(res.path)
        md = dict(ly.metadata)
        md["scoredenoise"] = {"source": ly.name, "file": str(res.path),
                              **img.extra.get("scoredenoise", {})}
        self.viewer.add_image(img.data, name=f"{ly.name} denoised ({res.path.name})",
                              metadata=md, contrast_limits=ly.contrast_limits,
                              colormap=ly.colormap.name, **geometry(ly))
        self.reset_choices()
        self._say(f"wrote {res.path}: {res.chunks_computed} chunk(s) computed, "
                            f"{res.chunks_resumed} resumed")

    def _on_step(self, done, total, _):
        self.bar.native.setRange(0, max(total, 1))
        self.bar.native.setValue(done)

    def _failed(self, exc):
        if isinstance(exc, sd.Cancelled):
            notifications.show_info(str(exc))
            self._say(str(exc))
        else:
            notifications.show_error(f"denoising failed: {exc}")
            self._say(f"failed: {exc}")

    def units(self) -> str:
        """The units of the results: the input's, or the signal above the camera offset
        (score models only: a direct denoiser gives the input's)."""
        model = self.session.model
        signal = self.signal.value and model is not None and model.kind == "score"
        return "signal" if signal else "input"

    def _noise_changed(self, *_):
        if self.live.value and self.lazy is not None and \
                f"{self.lazy['source']} denoised (lazy)" in self.viewer.layers:
            self._lazy_resolve()
        if self.live.value and self.output is not None:
            name = self.output.metadata["scoredenoise"]["source"]
            if name in self.viewer.layers and f"{name} denoised" in self.viewer.layers:
                self._resolve(self.viewer.layers[name])

    def _resolve(self, ly):
        """Solve every cached plane of ``ly`` with the current noise model (no network): one
        plane at once in the GUI thread (tens of ms, the live preview), several in a worker
        with the bar and Cancel; a change made meanwhile is solved when it ends (the last
        parameters win)."""
        model, nm, units = self.session.model, self.session.noise_model, self.units()
        items = [(idx, y, s) for (name, idx), (y, s) in self.cache.items() if name == ly.name]
        if len(items) <= 1:
            try:
                solved, msgs, sec = self._solve_cached(items, model, nm, units)
            except ValueError as exc:
                notifications.show_error(f"cannot solve with {nm.name}: {exc}")
                return
            self._apply_solved(ly, model, nm, units, solved, msgs, sec)
            return
        if self._resolving:  # solved again, with the parameters then current, when it ends
            self._resolve_again = ly
            return
        self._resolving = True
        self._resolve_again = None
        self._resolve_cancel.clear()  # its own flag: a scoring job's Cancel stays set

        def progress(done, total):
            self._progress.step.emit(done, total, None)
            return not self._resolve_cancel.is_set()

        def run():
            return self._solve_cached(items, model, nm, units, progress)

        def done(result):
            self._apply_solved(ly, model, nm, units, *result)

        def ended():
            self._resolving = False
            self.cancel_btn.enabled = self.running
            again, self._resolve_again = self._resolve_again, None
            if again is not None and again.name in self.viewer.layers:
                self._resolve(again)

        def failed(exc):
            if not isinstance(exc, sd.Cancelled):
                notifications.show_error(f"cannot solve with {nm.name}: {exc}")

        worker = create_worker(run, _connect={"errored": failed}, _start_thread=False)
        worker.returned.connect(done)
        worker.finished.connect(ended)
        self.cancel_btn.enabled = True
        self._say(f"{nm.name}: solving {len(items)} planes...")
        self._resolve_worker = worker
        worker.start()

    @staticmethod
    def _solve_cached(items, model, nm, units, progress=None):
        """(plane -> result, implausible-solution messages, seconds) for cached scores."""
        t0 = time.perf_counter()
        solved, msgs = {}, []
        for k, (idx, y, s) in enumerate(items):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", sd.ImplausibleSolutionWarning)
                solved[idx] = sd.denoise(y, model, nm, score=s, units=units,
                                         axes="ZYX"[-model.dims:])
            msgs += [str(w.message) for w in caught
                     if issubclass(w.category, sd.ImplausibleSolutionWarning)]
            if progress is not None and progress(k + 1, len(items)) is False:
                raise sd.Cancelled("re-solve cancelled; the layer keeps its last result")
        return solved, msgs, time.perf_counter() - t0

    def _apply_solved(self, ly, model, nm, units, solved, msgs, seconds):
        if msgs:  # the user sees it, not only a console
            notifications.show_warning(f"{nm.name}: {msgs[0]}")
        self.last_solve_seconds = seconds
        if ly.name not in self.viewer.layers:
            return
        out = self._output_layer(ly)
        for idx, x in solved.items():
            out.data[idx] = x
        md = sd.provenance(model, nm, sigma_a=self.sigma_a.get(ly.name,
                                                               model.sigma_a_default),
                           units=units, source=ly.name, model_source=self.session.model_source,
                           planes_done=len(solved), tta=self.tta.value)
        out.metadata["scoredenoise"].update(md)
        out.refresh()
        if md["noise_model"] is None:  # a related method's direct denoiser
            self._say(f"{len(solved)} plane(s) denoised by a direct denoiser ({md['method']}): "
                      f"no noise model to tune")
        else:
            self._say(f"{nm.name}: {len(solved)} plane(s) solved in "
                      f"{1000 * self.last_solve_seconds:.0f} ms (network not rerun)")

    def _output_layer(self, ly):
        # layers are matched by name and marker: napari hands plugins proxies, so identity
        # comparisons fail
        name = f"{ly.name} denoised"
        if name in self.viewer.layers:
            existing = self.viewer.layers[name]
            if existing.metadata.get("scoredenoise", {}).get("source") == ly.name and \
                    existing.data.shape == ly.data.shape:
                self.output = existing
                return existing
        kwargs = geometry(ly)
        md = dict(ly.metadata)
        md["scoredenoise"] = {"source": ly.name}
        self.output = self.viewer.add_image(
            np.zeros(ly.data.shape, np.float32), name=name, metadata=md,
            contrast_limits=ly.contrast_limits, colormap=ly.colormap.name, **kwargs)
        self.reset_choices()
        return self.output


