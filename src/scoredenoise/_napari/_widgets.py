"""Dock widgets: Train, Noise model, Denoise.

They share one session per viewer (the current model and noise model) and call only the public
API; long work runs in napari worker threads with progress, stop and errors shown as
notifications.
"""

from __future__ import annotations

import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import QObject, Qt, QThreadPool, QTimer
from qtpy.QtCore import Signal as QtSignal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import scoredenoise as sd
from scoredenoise import _axes
from scoredenoise.langevin import check_prior
from scoredenoise.noise import PAPER_KERNEL, get_noise_model, list_noise_models
from scoredenoise.objectives import OBJECTIVES
from scoredenoise.stream import default_chunks
from scoredenoise.training import interactive_settings

from ._plots import LossPlot, NoiseLevelPlot

#: Z slices per chunk of a lazy layer denoised by a 3D network (a 2D network: one plane)
LAZY_DEPTH = 16

# ---------------------------------------------------------------------------------------------
# shared state


class Session:
    """What the three widgets of one viewer share."""

    model_changed = Signal(object)
    noise_changed = Signal(object)

    def __init__(self):
        self.model: sd.ScoreModel | None = None
        self.model_source = ""
        self.noise_model = get_noise_model("poisson-gaussian")
        self.checkpoint = Path(tempfile.mkdtemp(prefix="scoredenoise-")) / "checkpoint.sdmodel"

    def set_model(self, model, source):
        self.model, self.model_source = model, source
        self.model_changed.emit(model)

    def set_noise_model(self, nm):
        self.noise_model = nm
        self.noise_changed.emit(nm)


_SESSIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


#: threads the global Qt pool keeps beside the plugin's workers. napari's workers run in
#: QThreadPool.globalInstance(), which Qt also uses to convert large images while it repaints,
#: holding the GIL (PyQt does not release it there) until the conversion's tasks end. With
#: the pool's default of one thread a core, two workers on a 2-core machine (training and an
#: estimate) fill it, the conversion waits for a free thread and the workers for the GIL: the
#: viewer froze. Free threads beside the workers keep the conversion going.
_SPARE_POOL_THREADS = 4


def _import_torch_lazies():
    """torch imports its compiler stack (torch._dynamo) on the first optimizer it builds;
    done in a worker while another worker runs torch code, the import failed ("'prims' object
    has no attribute 'sum'"), so it is done once here, in the GUI thread (about 1 s)."""
    import torch._dynamo  # noqa: F401


def get_session(viewer) -> Session:
    _import_torch_lazies()
    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < 4 + _SPARE_POOL_THREADS:  # at most 4 workers run at once
        pool.setMaxThreadCount(4 + _SPARE_POOL_THREADS)
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = Session()
    return _SESSIONS[viewer]


def image_layers(viewer):
    return [ly for ly in viewer.layers if isinstance(ly, Image)]


def follow_layers(viewer, refresh):
    """Call ``refresh`` when image layers are added, removed or renamed (the lists refreshed
    only on insert and remove, so a renamed layer broke every button with a KeyError)."""
    def watch(layer):
        layer.events.name.connect(refresh)

    for ly in viewer.layers:
        watch(ly)
    viewer.layers.events.inserted.connect(lambda event: (watch(event.value), refresh()))
    viewer.layers.events.removed.connect(refresh)


def _fill_source_layers(combo, viewer):
    """List the image layers that are not our own results, keeping the current choice (the
    same layer, also after a rename)."""
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    layers = [ly for ly in image_layers(viewer) if not ly.metadata.get("scoredenoise")]
    for ly in layers:
        combo.addItem(ly.name, id(ly))
    combo.blockSignals(False)
    ids = [id(ly) for ly in layers]
    if current in ids:
        combo.setCurrentIndex(ids.index(current))
    elif layers:
        combo.setCurrentIndex(0)


def full_resolution(layer):
    """A layer's data at full resolution: the finest level of a multiscale (pyramid) layer,
    whose noise is the camera's (coarser levels average it away), else the data."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def layer_axes(layer, dims: int = 2) -> str:
    """Default axes of a layer: Y X last, leading axes frames (or Z for a 3D model)."""
    if layer.rgb:
        raise ValueError(f"layer {layer.name!r} is RGB: split its channels (right-click > "
                         f"Split RGB) and train on the single channel images")
    nd = layer.data.ndim
    if nd < dims:
        raise ValueError(f"layer {layer.name!r} is {nd}D but the model is {dims}D; use a 2D "
                         f"model for 2D images")
    return _axes.default_axes(nd, dims)


class _Progress(QObject):
    """Carries progress from worker threads to the GUI thread (queued signal)."""

    step = QtSignal(int, int, object)
    #: a callable to run in the GUI thread (e.g. show a plane a worker has finished)
    call = QtSignal(object)


# ---------------------------------------------------------------------------------------------
# Train


class TrainWidget(QWidget):
    """Train a score model on one or several image layers, in a worker thread."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker = None
        self._stop = threading.Event()
        self.destroyed.connect(self._stop.set)  # a closed dock stops its training
        self._progress = _Progress()
        self._progress.step.connect(self._on_step)

        self.layers = QListWidget()
        self.layers.setSelectionMode(QAbstractItemView.MultiSelection)
        self.layers.setMaximumHeight(110)  # about five layers; it scrolls beyond
        self.layers.itemSelectionChanged.connect(self._guess_axes)
        self.axes = QLineEdit()
        self.axes.setToolTip("letters from TCZYXS, one per layer axis; editable")
        self.dims = QComboBox()
        self.dims.addItems(["2D", "3D"])
        self.dims.currentIndexChanged.connect(self._guess_axes)
        self.preset = QComboBox()
        self.preset.addItems(["small", "default", "large"])
        # a CPU user gets a result in 2-3 minutes, a GPU user the API's defaults
        quick = interactive_settings("auto")
        self.preset.setCurrentText(quick["preset"])
        self.objective = QComboBox()  # the methods that train on noisy layers alone
        self.objective.addItems([n for n, o in OBJECTIVES.items() if not o.needs_targets])
        self.objective.setToolTip("score: the method (choose and tune the noise model after "
                                  "training); neighbor2neighbor, iddp: related methods, for "
                                  "comparison (a fixed denoiser, no noise model)")
        self.preset.setToolTip("network size: small trains fastest on a CPU, large is meant "
                               "for a GPU")
        self.steps = _spin(1, 1_000_000, quick["steps"])
        self.steps.setToolTip("optimisation steps; Stop keeps a usable model at any time")
        self.patch = _spin(8, 1024, 64)
        self.patch.setToolTip("side of the random training patches (pixels)")
        self.batch = _spin(1, 512, 8)
        self.batch.setToolTip("patches per step")
        self.device = QComboBox()
        self.device.setToolTip("auto: the GPU when there is one, else the CPU")
        self.device.addItems(["auto", "cpu", "cuda"])
        self.val = QDoubleSpinBox()
        self.val.setToolTip("share of the data held out to plot a validation loss (0: none)")
        self.val.setRange(0.0, 0.5)
        self.val.setSingleStep(0.05)
        #: the training time to expect, shown before Start: steps x a measured step
        self.eta = QLabel()
        self.eta.setToolTip("measured: a few training steps of a fresh network with these "
                            "settings on this machine")
        self._step_seconds: dict = {}  # settings -> measured seconds a step
        self._eta_failed: dict = {}  # settings -> why they could not be measured (no retry)
        self._eta_worker = None
        self._closed = threading.Event()  # the dock is gone: a late measurement is dropped
        self.destroyed.connect(self._closed.set)
        self._eta_timer = QTimer(self)
        self._eta_timer.setSingleShot(True)
        self._eta_timer.setInterval(300)  # measure once the settings stop changing
        self._eta_timer.timeout.connect(self._measure_step)
        self.cont = QCheckBox("continue training the current model")
        self.start_btn = QPushButton("Start")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.save_btn = QPushButton("Save model...")
        self.load_btn = QPushButton("Load model...")
        self.bar = QProgressBar()
        self.plot = LossPlot()
        self.status = QLabel("no model")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image layers", self.layers)
        form.addRow("axes", self.axes)
        form.addRow("method", self.objective)
        form.addRow("network", self.dims)
        form.addRow("size preset", self.preset)
        form.addRow("steps", self.steps)
        form.addRow("patch size", self.patch)
        form.addRow("batch size", self.batch)
        form.addRow("device", self.device)
        form.addRow("validation fraction", self.val)
        form.addRow("expected time", self.eta)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.cont)
        lay.addLayout(_row(self.start_btn, self.stop_btn))
        lay.addWidget(self.bar)
        lay.addWidget(self.plot)
        lay.addLayout(_row(self.save_btn, self.load_btn))
        lay.addWidget(self.status)
        lay.addStretch()

        self.start_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.save_btn.clicked.connect(lambda: self.save_model())
        self.load_btn.clicked.connect(lambda: self.load_model())
        follow_layers(napari_viewer, self._refresh)
        self.session.model_changed.connect(self._show_model)
        for w in (self.dims, self.preset, self.objective, self.device):
            w.currentIndexChanged.connect(self._eta_timer.start)
        for w in (self.patch, self.batch):
            w.valueChanged.connect(self._eta_timer.start)
        self.steps.valueChanged.connect(self._show_eta)
        self._refresh()
        self._eta_shown = False  # measured when first shown, not for a hidden dock

    def showEvent(self, event):  # noqa: N802 (Qt API)
        super().showEvent(event)
        if not self._eta_shown:
            self._eta_shown = True
            self._eta_timer.start()

    # the expected training time
    def _eta_key(self):
        return (self.dims.currentIndex() + 2, self.preset.currentText(),
                self.patch.value(), self.batch.value(), self.objective.currentText(),
                self.device.currentText())

    def _measure_step(self):
        key = self._eta_key()
        if key in self._step_seconds:
            self._show_eta()
            return
        if key in self._eta_failed:  # e.g. "cuda" without a GPU: said once, not retried
            self.eta.setText(f"not measured: {self._eta_failed[key]}")
            return
        if self._eta_worker is not None:  # measured again when the running one ends
            return
        if not self.start_btn.isEnabled():  # training runs: a measurement would slow it
            return                          # and be slowed by it
        dims, preset, patch, batch, objective, device = key
        self.eta.setText("measuring...")
        def measured(sec):
            self._step_seconds[key] = sec
            if not self._closed.is_set():
                self._show_eta()

        def failed(exc):
            self._eta_failed[key] = exc
            if not self._closed.is_set():
                self.eta.setText(f"not measured: {exc}")

        def ended():
            self._eta_worker = None
            current = self._eta_key() if not self._closed.is_set() else None
            if current is not None and current not in self._step_seconds and \
                    current not in self._eta_failed:
                self._eta_timer.start()  # the settings changed meanwhile

        # errors go to failed (shown beside the field), not re-raised in the event loop
        worker = create_worker(sd.time_per_step, dims=dims, preset=preset, patch_size=patch,
                               batch_size=batch, objective=objective, device=device,
                               _connect={"errored": failed}, _start_thread=False)
        worker.returned.connect(measured)
        worker.finished.connect(ended)
        self._eta_worker = worker
        worker.start()

    def expected_seconds(self):
        """Expected training time for the current settings (None until measured)."""
        sec = self._step_seconds.get(self._eta_key())
        return None if sec is None else sec * self.steps.value()

    def _show_eta(self, *_):
        total = self.expected_seconds()
        if total is None:
            if self._eta_key() not in self._eta_failed:
                self._eta_timer.start()
            return
        sec = self._step_seconds[self._eta_key()]
        self.eta.setText(f"about {_duration(total)} ({sec:.2f} s a step, measured)")

    # layers
    def _refresh(self, *_):
        selected = {i.data(Qt.UserRole) for i in self.layers.selectedItems()}
        was_empty = self.layers.count() == 0
        self.layers.clear()
        for ly in image_layers(self.viewer):
            if ly.metadata.get("scoredenoise"):  # our own results are not training data
                continue
            self.layers.addItem(ly.name)
            item = self.layers.item(self.layers.count() - 1)
            item.setData(Qt.UserRole, id(ly))
            if id(ly) in selected:  # the same layer, also after a rename
                item.setSelected(True)
        if was_empty and self.layers.count():  # the first layer (the sample's noisy frames)
            self.layers.item(0).setSelected(True)  # is preselected

    def selected_names(self):
        return [i.text() for i in self.layers.selectedItems()]

    def select(self, names):
        for i in range(self.layers.count()):
            item = self.layers.item(i)
            item.setSelected(item.text() in names)

    def _guess_axes(self, *_):
        names = self.selected_names()
        if names:
            try:
                self.axes.setText(layer_axes(self.viewer.layers[names[0]],
                                             self.dims.currentIndex() + 2))
            except ValueError as exc:
                show_error(str(exc))

    # training
    def start(self):
        names = self.selected_names()
        if not names:
            show_error("select one or more image layers to train on")
            return
        dims = self.dims.currentIndex() + 2
        typed = self.axes.text().strip().upper()
        try:
            data, axes = [], []
            for n in names:
                ly = self.viewer.layers[n]
                guess = layer_axes(ly, dims)  # RGB / too few dimensions: clear errors
                # typed axes are used as typed or refused with the engine's reason (a bad
                # string was silently replaced by a guess)
                ax = _axes.check_axes(typed, ly.data.ndim, dims) if typed else guess
                data.append(full_resolution(ly))
                axes.append(ax)
        except ValueError as exc:
            show_error(str(exc))
            self.status.setText(f"not started: {exc}")
            return
        n_c = max(self.viewer.layers[n].data.shape[ax.index("C")] if "C" in ax else 1
                  for n, ax in zip(names, axes))
        if n_c > 1:  # say so: "CYX" on a stack of frames trained a 4-channel model silently
            show_warning(f"axes {axes[0]!r}: a {n_c}-channel model (it will denoise only "
                         f"{n_c}-channel images); use T or S for frames or planes of one "
                         f"channel")
        model = self.session.model if self.cont.isChecked() else None
        kw = dict(axes=axes, dims=dims, preset=self.preset.currentText(),
                  steps=self.steps.value(), patch_size=self.patch.value(),
                  batch_size=self.batch.value(), device=self.device.currentText(),
                  val_fraction=self.val.value(), model=model,
                  objective=self.objective.currentText(),
                  checkpoint=self.session.checkpoint,
                  checkpoint_every=max(self.steps.value() // 10, 10))
        self._stop.clear()
        self.plot.clear()
        self.bar.setRange(0, self.steps.value())
        self.bar.setValue(0)

        def run():
            return sd.train(data, progress=self._report, **kw)

        self.worker = create_worker(run, _connect={"errored": self._failed},
                                    _start_thread=False)
        self.worker.returned.connect(self._done)
        self.worker.finished.connect(self._finished)
        self.start_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.status.setText("training...")
        self.worker.start()

    def _report(self, step, total, logs):  # worker thread
        self._progress.step.emit(step, total, dict(logs))
        return not self._stop.is_set()

    def _on_step(self, step, total, logs):  # GUI thread
        self.bar.setValue(step)
        eta = logs["elapsed"] / step * (total - step)
        self.bar.setFormat(f"%v / %m steps, ETA {eta:.0f} s, loss {logs['loss']:.4f}")
        self.plot.add(step, logs)

    def stop(self):
        self._stop.set()

    def _done(self, model):
        src = "trained in napari" + (" (stopped early)" if model.meta.get("stopped_early") else "")
        self.session.set_model(model, src)

    def _failed(self, exc):
        show_error(f"training failed: {exc}")
        self.status.setText(f"training failed: {exc}")
        self._reset_progress()

    def _reset_progress(self):
        """Clear the bar and the loss plot (a loaded model or a failed start left the last
        run's '13 / 1000 steps, ETA 4912 s' and its curve)."""
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.plot.clear()

    def _finished(self):
        self.plot.finish()
        self.start_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self._show_eta()

    def _show_model(self, model):
        i = model.info
        self.status.setText(f"model: {self.session.model_source}; {model.dims}D, "
                            f"{i['parameters']:,} parameters, "
                            f"{model.meta.get('steps_done', 0)} steps")

    # files
    def save_model(self, path=None):
        if self.session.model is None:
            show_error("no model to save: train or load one first")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.sdmodel",
                                                  "scoredenoise models (*.sdmodel)")
            if not path:
                return None
        out = self.session.model.save(path)
        show_info(f"saved {out}")
        return out

    def load_model(self, path=None):
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load model", "",
                                                  "scoredenoise models (*.sdmodel)")
            if not path:
                return None
        try:
            model = sd.load_model(path)
        except (ValueError, FileNotFoundError) as exc:
            show_error(str(exc))
            return None
        self._reset_progress()
        self.session.set_model(model, str(path))
        return model


# ---------------------------------------------------------------------------------------------
# Noise model


class NoiseModelWidget(QWidget):
    """Pick a registered noise model; fields come from each model's parameter metadata."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.session = get_session(napari_viewer)
        self.combo = QComboBox()
        _fill_noise_models(self.combo)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.error = QLabel()
        self.error.setStyleSheet("color: #e05050")
        self.error.setWordWrap(True)
        self.warning = QLabel()  # valid values that do not fit the layer's data
        self.warning.setStyleSheet("color: #e0a030")
        self.warning.setWordWrap(True)
        #: each noise model's last valid values this session (switching models and back
        #: keeps them; an estimate stays with the model it was made for)
        self.memory: dict[str, dict] = {}
        self.form = QFormLayout()
        self.fields: dict[str, QDoubleSpinBox] = {}
        #: a correlated model's kernel: None for the model's default (the paper's, Eq. 30),
        #: else the one estimated from a layer or set by a script
        self.kernel = None
        self.kernel_label = None
        self.exact = QCheckBox("always solve exactly")
        self.exact.setToolTip(
            "solve the exact likelihood equation (a sum over photon counts) also where the "
            "read noise is 3 photon steps or more; by default it is solved exactly below "
            "that, where the paper's first-order Algorithm 5 is poor, and by Algorithm 5 "
            "above, where both agree (milliseconds a plane either way)")
        self.exact.stateChanged.connect(self._changed)
        # estimation from a layer
        self.viewer = napari_viewer
        self.layer = QComboBox()
        self.estimate_btn = QPushButton("Estimate from layer")
        self.estimate_btn.setToolTip("fit the model's parameters to the noise level function "
                                     "(variance against mean) of the chosen layer")
        self.white = QCheckBox("noise is white")
        self.white.setToolTip(
            "no correlation between neighbouring pixels. "
            "Unchecked: the noise correlation of scanners and some cameras is measured in the "
            "layer and corrected for where significant; check it when the noise is known to "
            "be white (fine texture can pass for correlation)")
        self.frames = QCheckBox("repeated frames (photon transfer)")
        self.frames.setToolTip(
            "the layer holds repeated frames of a static scene, a calibration series: the "
            "same field acquired again and again (first axis); the "
            "fit uses each pixel's temporal mean and variance, free of any structure, instead "
            "of one image's noise level function")
        self.plot = NoiseLevelPlot()
        self.fit_text = QLabel()
        self.fit_text.setWordWrap(True)
        self.estimate_result = None
        self._estimate_worker = None
        # progress and cancel of an estimate (a large stack takes tens of seconds)
        self._cancel = threading.Event()
        self.destroyed.connect(self._cancel.set)  # a closed dock cancels its work
        self._progress = _Progress()
        self._progress.step.connect(self._on_step)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self._cancel.set)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.combo)
        lay.addWidget(self.description)
        lay.addLayout(self.form)
        lay.addWidget(self.exact)
        lay.addWidget(self.error)
        lay.addWidget(self.warning)
        lay.addLayout(_row(self.layer, self.estimate_btn))
        lay.addLayout(_row(self.bar, self.cancel_btn))
        lay.addWidget(self.white)
        lay.addWidget(self.frames)
        lay.addWidget(self.plot)
        lay.addWidget(self.fit_text)
        lay.addStretch()
        self.estimate_btn.clicked.connect(self.estimate)
        follow_layers(napari_viewer, self._refresh_layers)
        self._refresh_layers()
        self.combo.currentTextChanged.connect(lambda name: self._build(name))
        self.combo.setCurrentText(self.session.noise_model.name)
        self._build(self.combo.currentText(), self.session.noise_model.to_dict()["params"])

    def _initial_values(self, name) -> dict:
        """A model's values when it is chosen: its own last values this session, else a fit
        of it to the last estimate's noise level function (no new pass over the data), else
        its defaults."""
        if name in self.memory:
            return self.memory[name]
        est = self.estimate_result
        if est is not None:
            try:
                return dict(sd.fit_noise_level(est.nlf, name).noise_model.to_dict()["params"])
            except (ValueError, RuntimeError, ArithmeticError):
                pass  # the model cannot be fitted to variances (e.g. a kernel alone)
        return {}

    def _build(self, name, values=None):
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        if values is None:
            values = self._initial_values(name)
        cls = type(get_noise_model(name))
        info = cls.describe()
        row = f"Table 1 row {info['table1_row']}" if info["table1_row"] else "camera model"
        self.description.setText(f"{info['summary']} ({row})\n{info['formula']}")
        # a model with a correlation kernel takes the correlation from it
        self.white.setVisible(not any(p.kind == "kernel" for p in cls.parameters()))
        self.kernel_label = None
        k = np.asarray((values or {}).get("kernel", PAPER_KERNEL), dtype=float)
        if k.ndim == 2 and not (k.shape == (3, 3) and np.allclose(k, PAPER_KERNEL)):
            self.kernel = tuple(map(tuple, k))
        for p in cls.parameters():
            if p.kind == "kernel":
                self.kernel_label = QLabel()
                self.kernel_label.setWordWrap(True)
                reset = QPushButton("Eq. 30")
                reset.setToolTip("use the paper's 3x3 kernel (Eq. 30) instead of the "
                                 "estimated one")
                reset.clicked.connect(lambda: self.set_params(kernel=None))
                self.form.addRow(p.name, _row(self.kernel_label, reset))
                self._show_kernel()
                continue
            box = QDoubleSpinBox()
            box.setDecimals(4)
            # any number can be typed: the engine validates it and its error is shown (a
            # clamped field hid a wrong value: gain -1 became 0.0001 without a word)
            box.setRange(-1e9, 1e9)
            box.setValue(float((values or {}).get(p.name, p.default)))
            box.setToolTip(f"{p.description} [{p.unit}; {p.range_text()}]")
            box.setSuffix(f"  {_unit_short(p.unit)}")
            box.valueChanged.connect(self._changed)
            self.fields[p.name] = box
            self.form.addRow(p.name, box)
        supports = getattr(cls, "supports_exact", None)
        self.exact.setVisible(bool(supports and supports()))
        self._changed()

    def _show_kernel(self):
        if self.kernel is None:
            self.kernel_label.setText("paper 3x3 kernel (Eq. 30)")
            self.kernel_label.setToolTip(str(PAPER_KERNEL))
            return
        k = np.asarray(self.kernel)
        self.kernel_label.setText(f"estimated {k.shape[0]}x{k.shape[1]}: " + " / ".join(
            " ".join(f"{v:.3f}" for v in row) for row in k))
        self.kernel_label.setToolTip("correlation kernel estimated from the layer's noise "
                                     "(rows, sum 1)")

    def _changed(self, *_):
        values = {k: b.value() for k, b in self.fields.items()}
        if self.kernel is not None and self.kernel_label is not None:
            values["kernel"] = self.kernel
        if self.exact.isVisibleTo(self) and self.exact.isChecked():
            values["exact"] = True
        name = self.combo.currentText()
        try:
            nm = get_noise_model(name, **values)
        except ValueError as exc:  # the engine's text, beside the field it names
            self.error.setText(str(exc))
            for k, b in self.fields.items():
                b.setStyleSheet(_BAD_FIELD if f"{name}: {k} " in str(exc) else "")
            return
        self.error.setText("")
        for b in self.fields.values():
            b.setStyleSheet("")
        self.memory[name] = nm.to_dict()["params"]
        self._warn_implausible(nm)
        self.session.set_noise_model(nm)

    def _warn_implausible(self, nm):
        """Valid values that cannot fit the chosen layer's data get a warning (not an
        error: the user may know better)."""
        name = self.layer.currentText()
        # napari's LayerList has no .get
        ly = self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401
        rng = getattr(ly, "contrast_limits_range", None)
        self.warning.setText("\n".join(nm.implausible(rng)) if rng is not None else "")

    def _refresh_layers(self, *_):
        _fill_source_layers(self.layer, self.viewer)

    def estimate(self):
        """Estimate the current model's parameters from the chosen layer (in a worker)."""
        name = self.layer.currentText()
        if not name:
            show_error("no image layer to estimate the noise from")
            return
        ly = self.viewer.layers[name]
        model = self.combo.currentText()
        try:
            axes = layer_axes(ly, 2)
        except ValueError as exc:
            show_error(str(exc))
            return
        extra = {}
        if self.frames.isChecked():  # repeated frames along the first axis
            if ly.data.ndim < 3:  # a 2-D layer would pass its rows for frames
                show_error(f"photon transfer needs a stack of repeated frames (first axis), "
                           f"but layer {ly.name!r} is one {ly.data.ndim}-D image of shape "
                           f"{tuple(ly.data.shape)}; uncheck 'repeated frames' to estimate "
                           f"from one image")
                return
            extra["frames_axis"] = 0
        # the plot's unit: camera counts for integer data, else the data's own
        self._estimate_unit = ("ADU" if np.issubdtype(np.dtype(ly.data.dtype), np.integer)
                               else "data units")
        self.estimate_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.bar.setValue(0)
        self._cancel.clear()
        self.fit_text.setText("estimating...")
        white = self.white.isVisibleTo(self) and self.white.isChecked()

        def progress(done, total):  # worker thread: to the GUI thread, and cancel
            self._progress.step.emit(done, total, None)
            return not self._cancel.is_set()

        worker = create_worker(sd.estimate_noise, full_resolution(ly), model, axes=axes,
                               correlation="none" if white else "auto", progress=progress,
                               **extra, _connect={"errored": self._estimate_failed},
                               _start_thread=False)
        worker.returned.connect(self._estimated)
        worker.finished.connect(lambda: (self.estimate_btn.setEnabled(True),
                                         self.cancel_btn.setEnabled(False)))
        self._estimate_worker = worker
        worker.start()

    def _on_step(self, done, total, _):
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)

    def _estimated(self, est):
        self.estimate_result = est
        params = {k: v for k, v in est.params.items() if k in self.fields}
        if est.kernel is not None:  # a correlated model's kernel, estimated with the rest
            params["kernel"] = est.params["kernel"]
        self.set_params(est.noise_model.name, **params)
        nlf = est.nlf
        grid = np.linspace(float(nlf.mean.min()), float(nlf.mean.max()), 64)
        # the model's curve as the measurement sees it (clipped moments near clipped limits)
        self.plot.show_fit(nlf.mean, nlf.variance, grid,
                           nlf.model_variance(est.noise_model, grid),
                           unit=getattr(self, "_estimate_unit", None))
        self.fit_text.setText(est.summary())

    def _estimate_failed(self, exc):
        self.fit_text.setText("")
        if isinstance(exc, sd.Cancelled):  # the fields keep their values
            show_info(f"noise estimation {exc}")
        else:
            show_error(f"noise estimation failed: {exc}")

    def set_params(self, name=None, **values):
        """Programmatic choice (used by scripts and tests)."""
        if name is not None and name != self.combo.currentText():
            self.combo.setCurrentText(name)
        if "kernel" in values:  # None: back to the model's default (the paper's)
            k = values.pop("kernel")
            self.kernel = None if k is None else tuple(map(tuple, np.atleast_2d(
                np.asarray(k, dtype=float))))
            if self.kernel_label is not None:
                self._show_kernel()
            self._changed()
        for k, v in values.items():
            self.fields[k].setValue(v)


def _fill_noise_models(combo):
    """The registry in two groups under headers that cannot be chosen: the camera models
    (parameters in ADU, what a microscope gives) first, then the paper's Table 1 by row."""
    infos = {n: type(get_noise_model(n)).describe() for n in list_noise_models()}
    groups = (
        ("Camera models (ADU)", [n for n, i in infos.items() if not i["table1_row"]]),
        ("The paper's Table 1", sorted((n for n, i in infos.items() if i["table1_row"]),
                                       key=lambda n: infos[n]["table1_row"])),
    )
    for header, names in groups:
        if not names:
            continue
        combo.addItem(f"— {header} —")
        item = combo.model().item(combo.count() - 1)
        item.setEnabled(False)  # a header, not a choice
        for n in names:
            combo.addItem(n)
            row = infos[n]["table1_row"]
            tip = infos[n]["summary"] + (f" (Table 1 row {row})" if row else "")
            combo.setItemData(combo.count() - 1, tip, Qt.ToolTipRole)


_BAD_FIELD = "background-color: #703030"


def _unit_short(unit):
    return {"data units": "ADU", "dimensionless": "", "1/data units": "1/ADU",
            "data units per photo-electron": "ADU/e-"}.get(unit, unit)


# ---------------------------------------------------------------------------------------------
# Denoise


class DenoiseWidget(QWidget):
    """Denoise a layer; re-solve at once when the noise model changes (cached score)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.cache: dict = {}  # (layer name, plane index) -> (y, score)
        self.sigma_a: dict = {}  # layer name -> the sigma_a its scores are evaluated at
        self.output = None
        self.worker = None
        self._cancel = threading.Event()
        self.destroyed.connect(self._cancel.set)  # a closed dock cancels its work
        self._progress = _Progress()
        self._progress.step.connect(self._on_step)
        self._progress.call.connect(lambda f: f())
        self.last_solve_seconds = None
        self.running = False  # a worker is computing (scores, sigma_a, a file)
        self._resolving = False  # a worker re-solves cached planes (no network)
        self._resolve_cancel = threading.Event()
        self.destroyed.connect(self._resolve_cancel.set)
        self._resolve_again = None  # the layer to re-solve when it ends (newer parameters)
        self._resolve_worker = None

        self.layer = QComboBox()
        self.live = QCheckBox("update when the noise model changes")
        self.live.setChecked(True)
        self.signal = QCheckBox("signal above the camera offset")
        self.signal.setToolTip(
            "unchecked (default): results in the layer's own units, comparable with the raw "
            "data (a camera model's offset included); checked: the signal above the camera "
            "offset. Recorded in the result's metadata")
        self.signal.stateChanged.connect(self._noise_changed)
        self.tta = QCheckBox("average 8 orientations (8x the network's time)")
        self.tta.setToolTip(
            "test-time augmentation: the network's output averaged over the 8 rotations and "
            "flips of each plane; +0.1 to +0.3 dB on the real data of docs/benchmarks.md. "
            "Scores computed before are computed again. Recorded in the result's metadata")
        # scores computed with the other setting are not reused
        self.tta.stateChanged.connect(lambda *_: self.cache.clear())
        #: one Denoise action; what it covers is a choice (label, method, tooltip)
        self.scopes = {
            "plane shown": (self.preview, "the plane on screen, in a second or two: tune the "
                            "noise model on it (it re-solves at once when the model changes)"),
            "whole layer": (self.denoise_all, "every plane of the layer, held in memory"),
            "lazy layer (as you browse)": (
                self.lazy_layer, "for stacks larger than memory: a layer whose planes are "
                "computed when shown, and kept for re-solving"),
            "whole layer to file": (
                self.denoise_to_file, "stream the whole layer to a .tif or .zarr chunk by "
                "chunk (resumable), then show the file"),
            "posterior std of the plane shown": (
                self.std_map, "how sure the result is, pixel by pixel: the posterior standard "
                "deviation as a layer beside the result (gaussian and poisson-gaussian "
                "noise models; 8 network passes; docs/uncertainty.md)"),
            "posterior std of the whole layer": (
                lambda: self.std_map(all_planes=True), "the posterior standard deviation of "
                "every plane, in a worker with progress and Cancel (9 network passes a "
                "plane); the planes done before a Cancel stay"),
            "posterior samples of the plane shown (needs a prior)": (
                self.samples, "stochastic denoising: several equally plausible clean images "
                "and their per-pixel spread (annealed Langevin dynamics; gaussian noise "
                "model; a prior trained on clean images: train --objective prior)"),
        }
        self.scope = QComboBox()
        for i, (label, (_, tip)) in enumerate(self.scopes.items()):
            self.scope.addItem(label)
            self.scope.setItemData(i, tip, Qt.ToolTipRole)
        self.scope.currentTextChanged.connect(self._scope_changed)
        self.denoise_btn = QPushButton("Denoise")
        self.denoise_btn.setToolTip("denoise the chosen layer with the current model and noise "
                                    "model, over the chosen scope")
        self.prior = None  # the score of clean images (train(objective="prior"))
        self.prior_source = None
        self.prior_btn = QPushButton("Load prior...")
        self.prior_btn.setToolTip("a model trained on clean images (frame averages) with "
                                  "objective 'prior': the score of clean images at every "
                                  "noise level, which posterior samples need")
        self.prior_label = QLabel("no prior")
        self.n_samples = _spin(1, 64, 4)
        self.n_samples.setToolTip("samples drawn together (one network batch)")
        self.file_path = QLineEdit()
        self.file_path.setPlaceholderText("output .tif or .zarr")
        self.browse_btn = QPushButton("...")
        self.chunk_cache = sd.ChunkCache()
        self.lazy = None  # the lazy result: source name, image, score
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.bar = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("image layer", self.layer)
        lay.addLayout(form)
        lay.addWidget(self.live)
        lay.addWidget(self.signal)
        lay.addWidget(self.tta)
        form.addRow("scope", self.scope)
        self.file_row = QWidget()
        file_lay = QHBoxLayout(self.file_row)
        file_lay.setContentsMargins(0, 0, 0, 0)
        file_lay.addWidget(self.file_path)
        file_lay.addWidget(self.browse_btn)
        form.addRow(self.file_row)
        self.prior_row = QWidget()
        prior_lay = QHBoxLayout(self.prior_row)
        prior_lay.setContentsMargins(0, 0, 0, 0)
        prior_lay.addWidget(self.prior_btn)
        prior_lay.addWidget(self.prior_label, 1)
        prior_lay.addWidget(QLabel("samples"))
        prior_lay.addWidget(self.n_samples)
        form.addRow(self.prior_row)
        lay.addWidget(self.denoise_btn)
        lay.addLayout(_row(self.bar, self.cancel_btn))
        lay.addWidget(self.status)
        lay.addStretch()
        self.denoise_btn.clicked.connect(self.denoise)
        self.browse_btn.clicked.connect(self._browse)
        self.prior_btn.clicked.connect(lambda: self.load_prior())
        self._scope_changed(self.scope.currentText())
        self.cancel_btn.clicked.connect(self._cancel.set)
        self.cancel_btn.clicked.connect(self._resolve_cancel.set)
        follow_layers(napari_viewer, self._refresh)
        self.session.noise_changed.connect(self._noise_changed)
        self.session.model_changed.connect(lambda *_: (self.cache.clear(),
                                                       self.sigma_a.clear()))
        self._refresh()

    def denoise(self):
        """The Denoise action over the chosen scope."""
        self.scopes[self.scope.currentText()][0]()

    def _scope_changed(self, label):
        self.file_row.setVisible(label == "whole layer to file")
        self.prior_row.setVisible(label.startswith("posterior samples"))
        self.denoise_btn.setToolTip(self.scopes[label][1])

    def _refresh(self, *_):
        _fill_source_layers(self.layer, self.viewer)

    def _source(self):
        model = self.session.model
        if model is None:
            raise ValueError("no model: train one or load a model file in the Train widget")
        name = self.layer.currentText()
        if not name:
            raise ValueError("no image layer to denoise")
        ly = self.viewer.layers[name]
        if model.channels != 1:
            raise ValueError(f"the model has {model.channels} channels; the napari widget "
                             f"denoises single-channel layers (use the Python API)")
        layer_axes(ly, model.dims)  # RGB or too few dimensions: a clear error
        return ly, model

    def _planes(self, ly, model, all_planes):
        lead = ly.data.ndim - model.dims
        if all_planes:
            return [tuple(i) for i in np.ndindex(*ly.data.shape[:lead])]
        return [_plane_shown(self.viewer, ly, lead)]

    def _score_plane(self, ly, model, idx, tta=False):
        """The plane and the network's output: its score (score models), or the denoised
        plane itself (direct denoisers of the related methods, which have no solve). A
        sigma-conditioned score is evaluated at one sigma_a per layer, chosen on a sample of
        the layer under the noise model of the time (SURE, a few seconds) and kept."""
        y = np.asarray(ly.data[idx], dtype=np.float32)
        ax = _axes.spatial_axes(model.dims)
        if model.kind == "denoiser":
            return y, model.predict(y, axes=ax, tta=tta)
        if ly.name not in self.sigma_a:
            self.sigma_a[ly.name] = model.resolve_sigma_a(
                full_resolution(ly), "auto", self.session.noise_model,
                axes=layer_axes(ly, model.dims))
        sig = self.sigma_a[ly.name] if model.conditioned else "auto"  # (fixed)
        return y, model.score(y, axes=ax, sigma_a=sig, tta=tta)

    def _checked_source(self, in_memory=False):
        try:
            ly, model = self._source()
        except ValueError as exc:
            show_error(str(exc))
            return None
        if in_memory and getattr(ly, "multiscale", False):  # the result would be held whole
            show_error(f"layer {ly.name!r} is multiscale (a pyramid of a large image): use "
                       f"'Lazy layer', which computes the planes shown, or 'Denoise all to "
                       f"file'")
            return None
        return ly, model

    def preview(self):
        """Score the plane (or volume) shown in a worker (progress, cancel), then solve; the
        score is kept for live re-solving."""
        self._score_planes(all_planes=False)

    def denoise_all(self):
        """Score every plane in a worker (progress, cancel), then solve."""
        self._score_planes(all_planes=True)

    def std_map(self, all_planes: bool = False):
        """The posterior standard deviation (``sd.posterior_std``) of the plane shown, or of
        every plane, in a worker (progress, Cancel), as the layer "NAME posterior std" with
        the source's geometry; each plane is shown as it is done."""
        src = self._checked_source(in_memory=True)
        if src is None:
            return
        ly, model = src
        if model.kind != "score" or model.dims != 2:
            show_error("the posterior std needs a 2D score model")
            return
        planes = self._planes(ly, model, all_planes)
        nm = self.session.noise_model
        name = f"{ly.name} posterior std"

        def layer():  # made (or replaced) when the first plane is done, not on a failure
            if name not in self.viewer.layers or \
                    self.viewer.layers[name].data.shape != ly.data.shape:
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
                md = dict(ly.metadata)
                md["scoredenoise"] = {"source": ly.name}
                self.viewer.add_image(np.zeros(ly.data.shape, np.float32), name=name,
                                      metadata=md, colormap="magma", **_geometry(ly))
            return self.viewer.layers[name]

        def show(idx, std):  # in the GUI thread
            out = layer()
            out.data[idx] = std
            out.metadata["scoredenoise"].update(sd.provenance(
                model, nm, sigma_a=self.sigma_a[ly.name], source=ly.name,
                kind="posterior std", model_source=self.session.model_source))
            out.contrast_limits = (0.0, max(float(out.data.max()), 1e-12))
            out.refresh()

        def run():
            if ly.name not in self.sigma_a:
                self.sigma_a[ly.name] = model.resolve_sigma_a(
                    full_resolution(ly), "auto", nm, axes=layer_axes(ly, model.dims))
            sig = self.sigma_a[ly.name] if model.conditioned else "auto"  # (fixed)
            self._progress.step.emit(0, len(planes), None)
            for k, idx in enumerate(planes):
                if self._cancel.is_set():
                    raise sd.Cancelled(f"posterior std cancelled after {k} of "
                                       f"{len(planes)} planes")
                std = sd.posterior_std(np.asarray(ly.data[idx], dtype=np.float32), model, nm,
                                       sigma_a=sig, rng=0)
                self._progress.call.emit(lambda idx=idx, std=std: show(idx, std))
                self._progress.step.emit(k + 1, len(planes), None)
            return planes

        def done(_planes):
            out = layer()
            std = out.data[planes[0]] if len(planes) == 1 else out.data
            what = f"plane {planes[0]}" if len(planes) == 1 else f"{len(planes)} planes"
            self.status.setText(f"posterior std of {what}: mean {float(np.mean(std)):.3g}")

        what = f"plane {planes[0]}" if len(planes) == 1 else f"{len(planes)} planes"
        self._start(run, done, f"posterior std of {what} of {ly.name} ...")

    def load_prior(self, path=None):
        """Load the prior for posterior samples (a model of ``train(objective="prior")``)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load prior", "",
                                                  "scoredenoise models (*.sdmodel)")
            if not path:
                return None
        try:
            prior = sd.load_model(path)
            check_prior(prior)
        except (ValueError, FileNotFoundError) as exc:
            show_error(str(exc))
            self.status.setText(str(exc))
            return None
        self.set_prior(prior, str(path))
        return prior

    def set_prior(self, prior, source):
        check_prior(prior)
        self.prior, self.prior_source = prior, source
        self.prior_label.setText(Path(str(source)).name)

    def samples(self):
        """Posterior samples of the plane shown (``sd.sample_posterior``) in a worker: the
        layers "NAME samples" (a leading sample axis) and "NAME samples spread"."""
        try:
            ly = self.viewer.layers[self.layer.currentText()]
        except KeyError:
            show_error("no image layer to denoise")
            return
        if self.prior is None:
            msg = ("posterior samples need a prior: load one trained on clean images "
                   "(scoredenoise train --objective prior)")
            show_error(msg)
            self.status.setText(msg)
            return
        nm = self.session.noise_model
        camera = self.prior.meta.get("stabilised_by")  # a camera prior brings its noise
        msg = None
        if getattr(ly, "multiscale", False):
            msg = "posterior samples take single-scale layers; open the full-resolution level"
        elif camera is None and nm.name != "gaussian":
            msg = (f"posterior samples with this prior need the gaussian noise model (its "
                   f"sigma), got {nm.name}: choose gaussian in step 2, or load a prior "
                   f"trained for the camera (train --objective prior --camera ...)")
        if msg:
            show_error(msg)
            self.status.setText(msg)
            return
        noise = dict(sigma=nm.sigma) if camera is None else {}
        prior, n = self.prior, self.n_samples.value()
        lead = ly.data.ndim - 2
        idx = _plane_shown(self.viewer, ly, lead)

        def run():
            y = np.asarray(ly.data[idx], dtype=np.float32)

            def progress(done, total):
                self._progress.step.emit(done, total, None)
                return not self._cancel.is_set()

            return sd.sample_posterior(y, prior, n_samples=n, rng=0, progress=progress,
                                       **noise)

        def done(xs):
            md = {"scoredenoise": {"source": ly.name, "kind": "posterior samples",
                                   "prior": self.prior_source,
                                   "sigma": None if camera else nm.sigma, "camera": camera,
                                   "plane": list(idx), "samples": n}}
            name = f"{ly.name} samples"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            full = np.zeros((n,) + ly.data.shape, np.float32)
            full[(slice(None),) + idx] = xs
            geo = _geometry(ly)
            # a leading sample axis before the layer's own (scale 1, no offset)
            self.viewer.add_image(full, name=name, metadata=md,
                                  contrast_limits=ly.contrast_limits,
                                  colormap=ly.colormap.name,
                                  scale=(1.0,) + tuple(geo["scale"]),
                                  translate=(0.0,) + tuple(geo["translate"]))
            spread_name = f"{ly.name} samples spread"
            if spread_name in self.viewer.layers:
                self.viewer.layers.remove(spread_name)
            sp = np.zeros(ly.data.shape, np.float32)
            sp[idx] = xs.std(axis=0)
            self.viewer.add_image(sp, name=spread_name, colormap="magma",
                                  metadata={"scoredenoise": {**md["scoredenoise"],
                                                             "kind": "posterior spread"}},
                                  **geo)
            self._refresh()
            self.status.setText(f"{n} posterior samples of plane {idx}: mean spread "
                                f"{float(xs.std(axis=0).mean()):.3g}")

        self._start(run, done, f"{n} posterior samples of plane {idx} of {ly.name} ...")

    def _score_planes(self, all_planes):
        src = self._checked_source(in_memory=True)
        if src is None:
            return
        ly, model = src
        planes = [p for p in self._planes(ly, model, all_planes)
                  if (ly.name, p) not in self.cache]

        nm, units = self.session.noise_model, self.units()
        tta = self.tta.isChecked()  # read here: workers do not touch widgets
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
        self.bar.setRange(0, 0)  # busy until the first step is reported
        self._busy(True)
        self.status.setText(status)
        self.worker.start()

    def _busy(self, busy):
        self.running = busy
        self.cancel_btn.setEnabled(busy)
        self.denoise_btn.setEnabled(not busy)
        self.scope.setEnabled(not busy)
        if not busy:
            self.bar.setRange(0, max(self.bar.maximum(), 1))

    # ----- large stacks: a lazy layer, and the whole stack to a file

    @staticmethod
    def _layer_array(ly):
        """The layer's full-resolution data as a dask array (lazy data stays lazy)."""
        import dask.array as da

        data = full_resolution(ly)
        if isinstance(data, da.Array):
            return data
        axes = "".join("T" if i < data.ndim - 2 else "YX"[i - data.ndim + 2]
                       for i in range(data.ndim))
        return da.from_array(data, chunks=default_chunks(data.shape, axes), asarray=False)

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
            if model.kind != "score" or not model.conditioned:
                return "auto"
            return model.resolve_sigma_a(image, "auto", nm, axes=axes,
                                         progress=self._step_or_cancel)

        def done(sigma_a):
            cache = sd.ChunkCache()
            score = None  # a direct denoiser (related methods) has no score: dask computes it
            img = image
            if model.kind == "score":
                score = model.score(img, axes=axes, cache=cache, sigma_a=sigma_a,
                                    tta=self.tta.isChecked())
                img = img.rechunk(score.chunks)
            self.chunk_cache = cache
            self.lazy = {"source": ly.name, "image": img, "score": score, "axes": axes,
                         "tta": self.tta.isChecked()}
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
                                  colormap=src.colormap.name, **_geometry(src))
            self._refresh()
        self.status.setText(f"{nm.name}: lazy layer; {self.chunk_cache.computed} chunk(s) "
                            f"computed so far")

    def _browse(self):
        path, _ = QFileDialog.getSaveFileName(self, "Denoise all to", "",
                                              "TIFF (*.tif *.tiff);;zarr (*.zarr)")
        if path:
            self.file_path.setText(path)

    def denoise_to_file(self, path=None):
        """Stream the whole layer to ``path`` (from its file when it has one) in a worker,
        with progress and cancel; then show the file-backed result."""
        src = self._checked_source()
        if src is None:
            return
        ly, model = src
        path = Path(path or self.file_path.text().strip())
        if not str(path) or path.suffix.lower() not in (".tif", ".tiff", ".zarr"):
            show_error("give an output file ending in .tif, .tiff or .zarr")
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
            self.status.setText(f"{path} exists: kept, nothing written")
            return
        units, tta = self.units(), self.tta.isChecked()  # workers do not touch widgets

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
            self, "Replace the file?", f"{path} exists.\nReplace it with the denoised "
            f"result?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _show_file(self, res, ly):
        img = sd.open_image(res.path)
        md = dict(ly.metadata)
        md["scoredenoise"] = {"source": ly.name, "file": str(res.path),
                              **img.extra.get("scoredenoise", {})}
        self.viewer.add_image(img.data, name=f"{ly.name} denoised ({res.path.name})",
                              metadata=md, contrast_limits=ly.contrast_limits,
                              colormap=ly.colormap.name, **_geometry(ly))
        self._refresh()
        self.status.setText(f"wrote {res.path}: {res.chunks_computed} chunk(s) computed, "
                            f"{res.chunks_resumed} resumed")

    def _on_step(self, done, total, _):
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)

    def _failed(self, exc):
        if isinstance(exc, sd.Cancelled):
            show_info(str(exc))
            self.status.setText(str(exc))
        else:
            show_error(f"denoising failed: {exc}")
            self.status.setText(f"failed: {exc}")

    def units(self) -> str:
        """The units of the results: the input's, or the signal above the camera offset
        (score models only: a direct denoiser gives the input's)."""
        model = self.session.model
        signal = self.signal.isChecked() and model is not None and model.kind == "score"
        return "signal" if signal else "input"

    def _noise_changed(self, *_):
        if self.live.isChecked() and self.lazy is not None and \
                f"{self.lazy['source']} denoised (lazy)" in self.viewer.layers:
            self._lazy_resolve()
        if self.live.isChecked() and self.output is not None:
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
                show_error(f"cannot solve with {nm.name}: {exc}")
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
            self.cancel_btn.setEnabled(self.running)
            again, self._resolve_again = self._resolve_again, None
            if again is not None and again.name in self.viewer.layers:
                self._resolve(again)

        def failed(exc):
            if not isinstance(exc, sd.Cancelled):
                show_error(f"cannot solve with {nm.name}: {exc}")

        worker = create_worker(run, _connect={"errored": failed}, _start_thread=False)
        worker.returned.connect(done)
        worker.finished.connect(ended)
        self.cancel_btn.setEnabled(True)
        self.status.setText(f"{nm.name}: solving {len(items)} planes...")
        self._resolve_worker = worker
        worker.start()

    @staticmethod
    def _solve_cached(items, model, nm, units, progress=None):
        """(plane -> result, implausible-solution messages, seconds) for cached scores."""
        t0 = time.perf_counter()
        solved, msgs = {}, []
        for k, (idx, y, s) in enumerate(items):
            if model.kind == "denoiser":
                solved[idx] = s
            else:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", sd.ImplausibleSolutionWarning)
                    solved[idx] = sd.denoise(y, model, nm, score=s, units=units,
                                             axes=_axes.spatial_axes(model.dims))
                msgs += [str(w.message) for w in caught
                         if issubclass(w.category, sd.ImplausibleSolutionWarning)]
            if progress is not None and progress(k + 1, len(items)) is False:
                raise sd.Cancelled("re-solve cancelled; the layer keeps its last result")
        return solved, msgs, time.perf_counter() - t0

    def _apply_solved(self, ly, model, nm, units, solved, msgs, seconds):
        if msgs:  # the user sees it, not only a console
            show_warning(f"{nm.name}: {msgs[0]}")
        self.last_solve_seconds = seconds
        if ly.name not in self.viewer.layers:
            return
        out = self._output_layer(ly)
        for idx, x in solved.items():
            out.data[idx] = x
        if model.kind == "denoiser":
            out.metadata["scoredenoise"].update(sd.provenance(
                model, source=ly.name, model_source=self.session.model_source,
                planes_done=len(solved), tta=self.tta.isChecked()))
            out.refresh()
            self.status.setText(f"{len(solved)} plane(s) denoised by a direct denoiser "
                                f"({out.metadata['scoredenoise']['method']}): no noise model "
                                f"to tune")
            return
        sig = self.sigma_a.get(ly.name, model.sigma_a_default)
        out.metadata["scoredenoise"].update(sd.provenance(
            model, nm, sigma_a=sig, units=units, source=ly.name,
            model_source=self.session.model_source, planes_done=len(solved),
            tta=self.tta.isChecked()))
        out.refresh()
        self.status.setText(f"{nm.name}: {len(solved)} plane(s) solved in "
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
        kwargs = _geometry(ly)
        md = dict(ly.metadata)
        md["scoredenoise"] = {"source": ly.name}
        self.output = self.viewer.add_image(
            np.zeros(ly.data.shape, np.float32), name=name, metadata=md,
            contrast_limits=ly.contrast_limits, colormap=ly.colormap.name, **kwargs)
        self._refresh()
        return self.output


# ---------------------------------------------------------------------------------------------
# helpers


def _plane_shown(viewer, ly, lead: int) -> tuple:
    """The index of the plane of ``ly`` the viewer shows, over its ``lead`` leading axes.

    The viewer's dims hold every layer's axes, right-aligned (a samples layer adds one in
    front), and its point is in world units (the layer's scale and translate): the point is
    mapped to the layer's data coordinates, not read as slider steps."""
    point = np.asarray(viewer.dims.point, float)[-ly.ndim:]
    data = np.asarray(ly.world_to_data(point), float)
    return tuple(int(np.clip(round(v), 0, n - 1))
                 for v, n in zip(data[:lead], ly.data.shape[:lead]))


def _geometry(ly) -> dict:
    """The layer's scale, units and placement, for a result that must overlay it."""
    return {attr: getattr(ly, attr) for attr in ("scale", "translate", "units", "axis_labels",
                                                  "rotate", "shear") if hasattr(ly, attr)}


def _duration(seconds: float) -> str:
    """'45 s', '3.5 min', '1 h 20 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _spin(lo, hi, value):
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    return s


def _row(*widgets):
    h = QHBoxLayout()
    for w in widgets:
        h.addWidget(w)
    return h


# ---------------------------------------------------------------------------------------------
# the three steps in one dock


class ScoreDenoiseWidget(QWidget):
    """The workflow in one dock, one numbered tab a step: 1 Train or load a score model,
    2 Noise model (pick, estimate, tune), 3 Denoise. The tabs are the three widgets, sharing
    the viewer's session; a noise model changed in tab 2 re-solves what tab 3 shows, without
    retraining. Each tab scrolls rather than grow beyond the screen."""

    STEPS = ("1 Train or load", "2 Noise model", "3 Denoise")

    def __init__(self, napari_viewer):
        super().__init__()
        self.train = TrainWidget(napari_viewer)
        self.noise = NoiseModelWidget(napari_viewer)
        self.denoise = DenoiseWidget(napari_viewer)
        self.tabs = QTabWidget()
        for title, page in zip(self.STEPS, (self.train, self.noise, self.denoise)):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # wrap, not scroll
            scroll.setWidget(page)
            self.tabs.addTab(scroll, title)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)
        # the next step is one click away: a model ready leads to the noise model
        self.train.session.model_changed.connect(self._model_ready)

    def _model_ready(self, *_):
        if self.tabs.currentIndex() == 0:
            self.tabs.setCurrentIndex(1)


__all__ = ["TrainWidget", "NoiseModelWidget", "DenoiseWidget", "ScoreDenoiseWidget",
           "get_session", "NoiseLevelPlot"]
