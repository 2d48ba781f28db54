"""Step 2: pick a registered noise model, estimate it from a layer, tune it (a magicgui
container). Every change goes to the viewer's session, where step 3 re-solves with it
without retraining."""

from __future__ import annotations

import threading

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    ProgressBar,
    PushButton,
)
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import notifications
from qtpy.QtCore import Qt

import scoredenoise as sd
from scoredenoise.noise import PAPER_KERNEL, get_noise_model, list_noise_models

from ._plots import NoiseLevelPlot
from ._session import (
    Progress,
    follow_layers,
    full_resolution,
    get_session,
    layer_axes,
    layer_choices,
    set_error,
)
from ._ui import Step, form, holder, row, wrapped_label


def noise_model_choices() -> tuple[list[str], set[str]]:
    """The registry in two groups under headers (returned apart: they cannot be chosen): the
    camera models (parameters in ADU, what a microscope gives) first, then the paper's
    Table 1 by row."""
    infos = {n: type(get_noise_model(n)).describe() for n in list_noise_models()}
    groups = (
        ("Camera models (ADU)", [n for n, i in infos.items() if not i["table1_row"]]),
        ("The paper's Table 1", sorted((n for n, i in infos.items() if i["table1_row"]),
                                       key=lambda n: infos[n]["table1_row"])),
    )
    choices, headers = [], set()
    for header, names in groups:
        if names:
            headers.add(f"— {header} —")
            choices += [f"— {header} —", *names]
    return choices, headers


def _unit_short(unit):
    return {"data units": "ADU", "dimensionless": "", "1/data units": "1/ADU",
            "data units per photo-electron": "ADU/e-"}.get(unit, unit)


class NoiseModelWidget(Step):
    """Pick a registered noise model; its fields come from the model's parameter metadata
    (each model keeps its own last values for the session); estimate them from a layer."""

    def __init__(self, napari_viewer):
        super().__init__(labels=False)  # full-width rows; fields in forms
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        choices, headers = noise_model_choices()
        self.combo = ComboBox(label="noise model", choices=choices,
                              value=self.session.noise_model.name,
                              tooltip="how the camera or detector corrupts the image; "
                                      "changing it re-solves the result without retraining")
        model = self.combo.native.model()
        for i, name in enumerate(choices):
            if name in headers:
                model.item(i).setEnabled(False)  # a header, not a choice
            else:
                info = type(get_noise_model(name)).describe()
                row_ = info["table1_row"]
                self.combo.native.setItemData(
                    i, info["summary"] + (f" (Table 1 row {row_})" if row_ else ""),
                    Qt.ToolTipRole)
        self.description = wrapped_label(label="")
        #: the chosen model's parameter fields (rebuilt when the model changes)
        self.form = Container(labels=True)
        self.form.margins = (0, 0, 0, 0)
        self.fields: dict[str, FloatSpinBox] = {}
        #: each noise model's last valid values this session (switching models and back
        #: keeps them; an estimate stays with the model it was made for)
        self.memory: dict[str, dict] = {}
        #: a correlated model's kernel: None for the model's default (the paper's, Eq. 30),
        #: else the one estimated from a layer or set by a script
        self.kernel = None
        self.kernel_label = None
        self.exact = CheckBox(
            text="always solve exactly", label="",
            tooltip="solve the exact likelihood equation (a sum over photon counts) also where "
                    "the read noise is 3 photon steps or more; by default it is solved exactly "
                    "below that, where the paper's first-order Algorithm 5 is poor, and by "
                    "Algorithm 5 above, where both agree (milliseconds a plane either way)")
        self.error = wrapped_label(label="")  # the engine's refusal, beside the field
        self.error.native.setStyleSheet("color: #e05050")
        self.warning = wrapped_label(label="")  # valid values that do not fit the layer
        self.warning.native.setStyleSheet("color: #e0a030")
        # estimation from a layer
        self.layer = ComboBox(label="estimate from", annotation=Image,
                              choices=layer_choices(napari_viewer),
                              tooltip="the layer whose noise is measured (also the one the "
                                      "values are checked against)")
        self.estimate_btn = PushButton(
            text="Estimate from layer",
            tooltip="fit the model's parameters to the noise level function (variance against "
                    "mean) of the chosen layer")
        self.cancel_btn = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(label="", min=0, max=1, value=0)
        self.white = CheckBox(
            text="noise is white", label="",
            tooltip="no correlation between neighbouring pixels. Unchecked: the noise "
                    "correlation of scanners and some cameras is measured in the layer and "
                    "corrected for where significant; check it when the noise is known to be "
                    "white (fine texture can pass for correlation)")
        self.frames = CheckBox(
            text="repeated frames (photon transfer)", label="",
            tooltip="the layer holds repeated frames of a static scene, a calibration series: "
                    "the same field acquired again and again (first axis); the fit uses each "
                    "pixel's temporal mean and variance, free of any structure, instead of one "
                    "image's noise level function")
        self.plot = NoiseLevelPlot()
        self.fit_text = wrapped_label(label="")
        self.extend([form(self.combo), self.description, self.form, self.exact, self.error,
                     self.warning, form(self.layer), row(self.estimate_btn, self.cancel_btn),
                     self.bar, self.white, self.frames, holder(self.plot), self.fit_text])
        self.end()
        self.estimate_result = None
        self._estimate_worker = None
        self._estimate_unit = None
        # progress and cancel of an estimate (a large stack takes tens of seconds)
        self._cancel = threading.Event()
        self.native.destroyed.connect(self._cancel.set)  # a closed dock cancels its work
        self._progress = Progress()
        self._progress.step.connect(self._on_step)
        self.cancel_btn.clicked.connect(self._cancel.set)
        self.estimate_btn.clicked.connect(self.estimate)
        self.exact.changed.connect(self._changed)
        self.layer.changed.connect(lambda *_: self._warn_implausible(self.session.noise_model))
        follow_layers(napari_viewer, [self])
        self.reset_choices()
        self.combo.changed.connect(lambda name: self._build(name))
        self._build(self.combo.value, self.session.noise_model.to_dict()["params"])

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
        self.form.clear()
        self.fields = {}
        if values is None:
            values = self._initial_values(name)
        cls = type(get_noise_model(name))
        info = cls.describe()
        where = f"Table 1 row {info['table1_row']}" if info["table1_row"] else "camera model"
        self.description.value = f"{info['summary']} ({where})\n{info['formula']}"
        # a model with a correlation kernel takes the correlation from it
        self.white.visible = not any(p.kind == "kernel" for p in cls.parameters())
        self.kernel_label = None
        k = np.asarray((values or {}).get("kernel", PAPER_KERNEL), dtype=float)
        if k.ndim == 2 and not (k.shape == (3, 3) and np.allclose(k, PAPER_KERNEL)):
            self.kernel = tuple(map(tuple, k))
        for p in cls.parameters():
            if p.kind == "kernel":
                self.kernel_label = wrapped_label()
                reset = PushButton(text="Eq. 30", tooltip="use the paper's 3x3 kernel (Eq. 30) "
                                   "instead of the estimated one")
                reset.clicked.connect(lambda: self.set_params(kernel=None))
                kernel_row = row(self.kernel_label, reset)
                kernel_row.label = p.name
                self.form.append(kernel_row)
                self._show_kernel()
                continue
            unit = _unit_short(p.unit)
            # any number can be typed: the engine validates it and its error is shown (a
            # clamped field hid a wrong value: gain -1 became 0.0001 without a word)
            box = FloatSpinBox(label=f"{p.name} ({unit})" if unit else p.name,
                               min=-1e9, max=1e9, step=0.1,
                               value=float((values or {}).get(p.name, p.default)),
                               tooltip=f"{p.description} [{p.unit}; {p.range_text()}]")
            box.native.setDecimals(4)
            box.value = float((values or {}).get(p.name, p.default))  # (after the decimals)
            box.changed.connect(self._changed)
            self.fields[p.name] = box
            self.form.append(box)
        supports = getattr(cls, "supports_exact", None)
        self.exact.visible = bool(supports and supports())
        self._changed()

    def _show_kernel(self):
        if self.kernel is None:
            self.kernel_label.value = "paper 3x3 kernel (Eq. 30)"
            self.kernel_label.tooltip = str(PAPER_KERNEL)
            return
        k = np.asarray(self.kernel)
        self.kernel_label.value = f"estimated {k.shape[0]}x{k.shape[1]}: " + " / ".join(
            " ".join(f"{v:.3f}" for v in r) for r in k)
        self.kernel_label.tooltip = "correlation kernel estimated from the layer's noise " \
                                    "(rows, sum 1)"

    def _changed(self, *_):
        values = {k: b.value for k, b in self.fields.items()}
        if self.kernel is not None and self.kernel_label is not None:
            values["kernel"] = self.kernel
        if self.exact.native.isVisibleTo(self.native) and self.exact.value:
            values["exact"] = True
        name = self.combo.value
        try:
            nm = get_noise_model(name, **values)
        except ValueError as exc:  # the engine's text, beside the field it names
            self.error.value = str(exc)
            for k, b in self.fields.items():
                set_error(b, f"{name}: {k} " in str(exc))
            return
        self.error.value = ""
        for b in self.fields.values():
            set_error(b, False)
        self.memory[name] = nm.to_dict()["params"]
        self._warn_implausible(nm)
        self.session.set_noise_model(nm)

    def _warn_implausible(self, nm):
        """Valid values that cannot fit the chosen layer's data get a warning (not an
        error: the user may know better)."""
        rng = getattr(self.layer.value, "contrast_limits_range", None)
        self.warning.value = "\n".join(nm.implausible(rng)) if rng is not None else ""

    def estimate(self):
        """Estimate the current model's parameters from the chosen layer (in a worker)."""
        ly = self.layer.value
        if ly is None:
            notifications.show_error("no image layer to estimate the noise from")
            return
        model = self.combo.value
        try:
            axes = layer_axes(ly, 2)
        except ValueError as exc:
            notifications.show_error(str(exc))
            return
        extra = {}
        if self.frames.value:  # repeated frames along the first axis
            if ly.data.ndim < 3:  # a 2-D layer would pass its rows for frames
                notifications.show_error(
                    f"photon transfer needs a stack of repeated frames (first axis), but "
                    f"layer {ly.name!r} is one {ly.data.ndim}-D image of shape "
                    f"{tuple(ly.data.shape)}; uncheck 'repeated frames' to estimate from one "
                    f"image")
                return
            extra["frames_axis"] = 0
        # the plot's unit: camera counts for integer data, else the data's own
        self._estimate_unit = ("ADU" if np.issubdtype(np.dtype(ly.data.dtype), np.integer)
                               else "data units")
        self.estimate_btn.enabled = False
        self.cancel_btn.enabled = True
        self.bar.value = 0
        self._cancel.clear()
        self.fit_text.value = "estimating..."
        white = self.white.native.isVisibleTo(self.native) and self.white.value

        def progress(done, total):  # worker thread: to the GUI thread, and cancel
            self._progress.step.emit(done, total, None)
            return not self._cancel.is_set()

        worker = create_worker(sd.estimate_noise, full_resolution(ly), model, axes=axes,
                               correlation="none" if white else "auto", progress=progress,
                               **extra, _connect={"errored": self._estimate_failed},
                               _start_thread=False)
        worker.returned.connect(self._estimated)
        worker.finished.connect(self._estimate_ended)
        self._estimate_worker = worker
        worker.start()

    def _estimate_ended(self):
        self.estimate_btn.enabled = True
        self.cancel_btn.enabled = False

    def _on_step(self, done, total, _):
        self.bar.max = max(total, 1)
        self.bar.value = done

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
                           nlf.model_variance(est.noise_model, grid), unit=self._estimate_unit)
        self.fit_text.value = est.summary()

    def _estimate_failed(self, exc):
        self.fit_text.value = ""
        if isinstance(exc, sd.Cancelled):  # the fields keep their values
            notifications.show_info(f"noise estimation {exc}")
        else:
            notifications.show_error(f"noise estimation failed: {exc}")

    def set_params(self, name=None, **values):
        """Programmatic choice (used by scripts and tests)."""
        if name is not None and name != self.combo.value:
            self.combo.value = name
        if "kernel" in values:  # None: back to the model's default (the paper's)
            k = values.pop("kernel")
            self.kernel = None if k is None else tuple(map(tuple, np.atleast_2d(
                np.asarray(k, dtype=float))))
            if self.kernel_label is not None:
                self._show_kernel()
            self._changed()
        for k, v in values.items():
            self.fields[k].value = v
