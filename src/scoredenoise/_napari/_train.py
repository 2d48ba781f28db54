"""Step 1: train a score model on image layers, or load one (a magicgui container)."""

from __future__ import annotations

import threading

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    LineEdit,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
)
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import notifications
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog

import scoredenoise as sd
from scoredenoise.objectives import OBJECTIVES
from scoredenoise.training import interactive_settings

from ._plots import LossPlot
from ._session import (
    Progress,
    duration,
    follow_layers,
    full_resolution,
    get_session,
    layer_axes,
    layer_choices,
)
from ._ui import Step, form, holder, on_first_show, row, wrapped_label


class TrainWidget(Step):
    """Train a score model on one or several image layers, in a worker thread with progress
    and Stop; or load a model file. The model goes to the viewer's session, where the noise
    model and denoise steps find it."""

    def __init__(self, napari_viewer):
        super().__init__(labels=False)  # full-width rows; fields in forms
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker = None
        self._stop = threading.Event()
        self.native.destroyed.connect(self._stop.set)  # a closed dock stops its training
        self._progress = Progress()
        self._progress.step.connect(self._on_step)
        quick = interactive_settings("auto")  # a CPU user: a result in 2-3 minutes

        self.layers = Select(
            label="image layers", annotation=list[Image],
            choices=layer_choices(napari_viewer),
            tooltip="the layers to train on (several: one model for all); the plugin's own "
                    "results are not offered")
        self.layers.native.setMaximumHeight(110)  # about five layers; it scrolls beyond
        self.axes = LineEdit(label="axes",
                             tooltip="letters from TCZYXS, one per layer axis; editable")
        self.objective = ComboBox(  # the methods that train on noisy layers alone
            label="method",
            choices=[n for n, o in OBJECTIVES.items() if not o.needs_targets],
            tooltip="score: the method (choose and tune the noise model after training); "
                    "neighbor2neighbor, iddp: related methods, for comparison (a fixed "
                    "denoiser, no noise model)")
        self.dims = ComboBox(label="network", choices=[("2D", 2), ("3D", 3)],
                             tooltip="2D: planes (any leading axes are frames or slices); "
                                     "3D: volumes (axes Z Y X)")
        self.preset = ComboBox(label="size preset", choices=["small", "default", "large"],
                               value=quick["preset"],
                               tooltip="network size: small trains fastest on a CPU, large "
                                       "is meant for a GPU")
        self.steps = SpinBox(label="steps", min=1, max=1_000_000, value=quick["steps"],
                             tooltip="optimisation steps; Stop keeps a usable model at any "
                                     "time")
        self.patch = SpinBox(label="patch size", min=8, max=1024, value=64,
                             tooltip="side of the random training patches (pixels)")
        self.batch = SpinBox(label="batch size", min=1, max=512, value=8,
                             tooltip="patches per step")
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"],
                               tooltip="auto: the GPU when there is one, else the CPU")
        self.val = FloatSpinBox(label="validation fraction", min=0.0, max=0.5, step=0.05,
                                value=0.0,
                                tooltip="share of the data held out to plot a validation "
                                        "loss (0: none)")
        self.units = ComboBox(label="units", choices=[("auto", "auto"), ("data", "data"),
                                                      ("photons per image", "photons")],
                              value="auto",
                              tooltip="photons per image: each layer in its own "
                                      "photo-electrons, by its own noise estimate (score "
                                      "method only); data: one normalisation for all layers; "
                                      "auto: photons for photon-starved counts")
        #: the training time to expect, shown before Start: steps x a measured step
        self.eta = wrapped_label(label="expected time",
                                 tooltip="measured: a few training steps of a fresh network "
                                         "with these settings on this machine")
        self.cont = CheckBox(text="continue training the current model", label="")
        self.start_btn = PushButton(text="Start", tooltip="train in the background; the "
                                    "viewer stays usable")
        self.stop_btn = PushButton(text="Stop", enabled=False,
                                   tooltip="stop after the current step; the model so far is "
                                           "kept and usable")
        self.bar = ProgressBar(label="", min=0, max=1, value=0)
        self.plot = LossPlot()
        self.save_btn = PushButton(text="Save model...")
        self.load_btn = PushButton(text="Load model...",
                                   tooltip="a .sdmodel file (safetensors; never unpickled)")
        self.status = wrapped_label("no model", label="")
        self.extend([form(self.layers, self.axes, self.objective, self.dims, self.preset,
                          self.steps, self.patch, self.batch, self.device, self.val,
                          self.units, self.eta),
                     self.cont, row(self.start_btn, self.stop_btn), self.bar,
                     holder(self.plot), row(self.save_btn, self.load_btn), self.status])
        self.end()

        self._step_seconds: dict = {}  # settings -> measured seconds a step
        self._eta_failed: dict = {}  # settings -> why they could not be measured (no retry)
        self._eta_worker = None
        self._closed = threading.Event()  # the dock is gone: a late measurement is dropped
        self.native.destroyed.connect(self._closed.set)
        self._eta_timer = QTimer(self.native)
        self._eta_timer.setSingleShot(True)
        self._eta_timer.setInterval(300)  # measure once the settings stop changing
        self._eta_timer.timeout.connect(self._measure_step)
        on_first_show(self.native, lambda: self._eta_timer.start())

        self.start_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.save_btn.clicked.connect(lambda: self.save_model())
        self.load_btn.clicked.connect(lambda: self.load_model())
        self.layers.changed.connect(self._guess_axes)
        self.dims.changed.connect(self._guess_axes)
        for w in (self.dims, self.preset, self.objective, self.device, self.patch,
                  self.batch):
            w.changed.connect(lambda *_: self._eta_timer.start())
        self.steps.changed.connect(self._show_eta)
        self._preselected = False
        follow_layers(napari_viewer, [self])
        self.session.model_changed.connect(self._show_model)
        self.reset_choices()

    def reset_choices(self, *_):
        """Refresh the layer list, keeping the chosen layers (also renamed ones); the first
        layer (the sample's noisy frames) is preselected when the list was empty."""
        super().reset_choices()
        if not self.layers.value and not self._preselected and self.layers.choices:
            self._preselected = True
            self.layers.value = [self.layers.choices[0]]

    # the expected training time
    def _eta_key(self):
        return (self.dims.value, self.preset.value, self.patch.value, self.batch.value,
                self.objective.value, self.device.value)

    def _measure_step(self):
        key = self._eta_key()
        if key in self._step_seconds:
            self._show_eta()
            return
        if key in self._eta_failed:  # e.g. "cuda" without a GPU: said once, not retried
            self.eta.value = f"not measured: {self._eta_failed[key]}"
            return
        if self._eta_worker is not None:  # measured again when the running one ends
            return
        if not self.start_btn.enabled:  # training runs: a measurement would slow it
            return                      # and be slowed by it
        dims, preset, patch, batch, objective, device = key
        self.eta.value = "measuring..."

        def measured(sec):
            self._step_seconds[key] = sec
            if not self._closed.is_set():
                self._show_eta()

        def failed(exc):
            self._eta_failed[key] = exc
            if not self._closed.is_set():
                self.eta.value = f"not measured: {exc}"

        def ended():
            self._eta_worker = None
            current = self._eta_key() if not self._closed.is_set() else None
            if current is not None and current not in self._step_seconds and \
                    current not in self._eta_failed:
                self._eta_timer.start()  # the settings changed meanwhile

        # errors go to failed (shown beside the field), not re-raised in the event loop
        config = sd.TrainConfig(dims=dims, preset=preset, patch_size=patch, batch_size=batch,
                                objective=objective)
        worker = create_worker(sd.time_per_step, config=config, device=device,
                               _connect={"errored": failed}, _start_thread=False)
        worker.returned.connect(measured)
        worker.finished.connect(ended)
        self._eta_worker = worker
        worker.start()

    def expected_seconds(self):
        """Expected training time for the current settings (None until measured)."""
        sec = self._step_seconds.get(self._eta_key())
        return None if sec is None else sec * self.steps.value

    def _show_eta(self, *_):
        total = self.expected_seconds()
        if total is None:
            if self._eta_key() not in self._eta_failed:
                self._eta_timer.start()
            return
        sec = self._step_seconds[self._eta_key()]
        self.eta.value = f"about {duration(total)} ({sec:.2f} s a step)"

    # layers
    def selected_names(self):
        return [ly.name for ly in self.layers.value]

    def select(self, names):
        self.layers.value = [ly for ly in self.layers.choices if ly.name in names]

    def _guess_axes(self, *_):
        chosen = self.layers.value
        if chosen:
            try:
                self.axes.value = layer_axes(chosen[0], self.dims.value)
            except ValueError as exc:
                notifications.show_error(str(exc))

    # training
    def config(self) -> sd.TrainConfig:
        """The training settings the fields hold (the engine validates them)."""
        return sd.TrainConfig(objective=self.objective.value, dims=self.dims.value,
                              preset=self.preset.value, steps=self.steps.value,
                              patch_size=self.patch.value, batch_size=self.batch.value,
                              val_fraction=self.val.value, units=self.units.value)

    def start(self):
        layers = list(self.layers.value)
        if not layers:
            notifications.show_error("select one or more image layers to train on")
            return
        dims = self.dims.value
        typed = self.axes.value.strip().upper()
        try:
            data, axes = [], []
            for ly in layers:
                guess = layer_axes(ly, dims)  # RGB / too few dimensions: clear errors
                # typed axes are used as typed or refused with the engine's reason (a bad
                # string was silently replaced by a guess)
                ax = sd.check_axes(typed, ly.data.ndim, dims) if typed else guess
                data.append(full_resolution(ly))
                axes.append(ax)
        except ValueError as exc:
            notifications.show_error(str(exc))
            self.status.value = f"not started: {exc}"
            return
        n_c = max(ly.data.shape[ax.index("C")] if "C" in ax else 1
                  for ly, ax in zip(layers, axes))
        if n_c > 1:  # say so: "CYX" on a stack of frames trained a 4-channel model silently
            notifications.show_warning(
                f"axes {axes[0]!r}: a {n_c}-channel model (it will denoise only {n_c}-channel "
                f"images); use T or S for frames or planes of one channel")
        model = self.session.model if self.cont.value else None
        steps = self.steps.value
        try:
            config = self.config()
        except ValueError as exc:
            notifications.show_error(str(exc))
            self.status.value = f"not started: {exc}"
            return
        kw = {"config": config, "axes": axes, "device": self.device.value, "model": model,
              "checkpoint": self.session.checkpoint, "checkpoint_every": max(steps // 10, 10)}
        self._stop.clear()
        self.plot.clear()
        self.bar.max, self.bar.value = steps, 0

        def run():
            return sd.train(data, progress=self._report, **kw)

        self.worker = create_worker(run, _connect={"errored": self._failed},
                                    _start_thread=False)
        self.worker.returned.connect(self._done)
        self.worker.finished.connect(self._finished)
        self.start_btn.enabled = False
        self.stop_btn.enabled = True
        self.status.value = "training..."
        self.worker.start()

    def _report(self, step, total, logs):  # worker thread
        self._progress.step.emit(step, total, dict(logs))
        return not self._stop.is_set()

    def _on_step(self, step, total, logs):  # GUI thread
        self.bar.value = step
        eta = logs["elapsed"] / step * (total - step)
        self.bar.native.setFormat(f"%v / %m steps, ETA {eta:.0f} s, loss {logs['loss']:.4f}")
        self.plot.add(step, logs)

    def stop(self):
        self._stop.set()

    def _done(self, model):
        src = "trained in napari" + (" (stopped early)" if model.meta.get("stopped_early") else "")
        self.session.set_model(model, src)

    def _failed(self, exc):
        notifications.show_error(f"training failed: {exc}")
        self.status.value = f"training failed: {exc}"
        self._reset_progress()

    def _reset_progress(self):
        """Clear the bar and the loss plot (a loaded model or a failed start left the last
        run's '13 / 1000 steps, ETA 4912 s' and its curve)."""
        self.bar.max, self.bar.value = 1, 0
        self.bar.native.setFormat("")
        self.plot.clear()

    def _finished(self):
        self.plot.finish()
        self.start_btn.enabled = True
        self.stop_btn.enabled = False
        self._show_eta()

    def _show_model(self, model):
        i = model.info
        self.status.value = (f"model: {self.session.model_source}; {model.dims}D, "
                             f"{i['parameters']:,} parameters, "
                             f"{model.meta.get('steps_done', 0)} steps")

    # files
    def save_model(self, path=None):
        if self.session.model is None:
            notifications.show_error("no model to save: train or load one first")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.native, "Save model", "model.sdmodel",
                                                  "scoredenoise models (*.sdmodel)")
            if not path:
                return None
        out = self.session.model.save(path)
        notifications.show_info(f"saved {out}")
        return out

    def load_model(self, path=None):
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.native, "Load model", "",
                                                  "scoredenoise models (*.sdmodel)")
            if not path:
                return None
        try:
            model = sd.load_model(path)
        except (ValueError, FileNotFoundError) as exc:
            notifications.show_error(str(exc))
            return None
        self._reset_progress()
        self.session.set_model(model, str(path))
        return model
