"""What the plugin's widgets share: one session per viewer (the current model and noise
model), the layers they offer, the worker thread pool, and the geometry of results."""

from __future__ import annotations

import tempfile
import weakref
from pathlib import Path

import numpy as np
from napari.layers import Image
from psygnal import Signal
from qtpy.QtCore import QObject, QThreadPool
from qtpy.QtCore import Signal as QtSignal

import scoredenoise as sd
from scoredenoise.noise import get_noise_model


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


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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


class Progress(QObject):
    """Carries progress from worker threads to the GUI thread (queued signal)."""

    step = QtSignal(int, int, object)
    #: a callable to run in the GUI thread (e.g. show a plane a worker has finished)
    call = QtSignal(object)


# ---------------------------------------------------------------------------------------------
# layers


def source_layers(viewer) -> list:
    """The image layers a user may train on or denoise: not the plugin's own results."""
    return [ly for ly in viewer.layers
            if isinstance(ly, Image) and not ly.metadata.get("scoredenoise")]


def layer_choices(viewer):
    """``choices`` for a magicgui layer widget (annotated ``napari.layers.Image``): the
    source layers as (name, layer). The value is the layer itself, so a renamed layer stays
    chosen and every action keeps working."""
    def choices(_widget=None):
        return [(ly.name, ly) for ly in source_layers(viewer)]
    return choices


def follow_layers(viewer, widgets):
    """Refresh the layer choices of ``widgets`` (``reset_choices``) when image layers are
    added, removed or renamed; napari does the first two for a docked magicgui widget, not
    for one inside a tab, and not the third."""
    def refresh(*_):
        for w in widgets:
            w.reset_choices()

    def watch(layer):
        layer.events.name.connect(refresh)

    for ly in viewer.layers:
        watch(ly)
    viewer.layers.events.inserted.connect(lambda event: (watch(event.value), refresh()))
    viewer.layers.events.removed.connect(refresh)
    return refresh


def full_resolution(layer):
    """A layer's data at full resolution: the finest level of a multiscale (pyramid) layer,
    whose noise is the camera's (coarser levels average it away), else the data."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def layer_axes(layer, dims: int = 2) -> str:
    """A layer's axes: those its metadata records (``"axes"``: the plugin's reader and
    sample write them) where they fit the layer and the model, else the engine's default
    (``scoredenoise.default_axes``). RGB layers and too few dimensions are refused."""
    if layer.rgb:
        raise ValueError(f"layer {layer.name!r} is RGB: split its channels (right-click > "
                         f"Split RGB) and train on the single channel images")
    nd = layer.data.ndim
    if nd < dims:
        raise ValueError(f"layer {layer.name!r} is {nd}D but the model is {dims}D; use a 2D "
                         f"model for 2D images")
    recorded = layer.metadata.get("axes") if isinstance(layer.metadata, dict) else None
    if isinstance(recorded, str):
        try:
            return sd.check_axes(recorded, nd, dims)
        except ValueError:
            pass  # the layer was reshaped since, or the model needs other axes: the default
    return sd.default_axes(nd, dims)


def plane_shown(viewer, ly, lead: int) -> tuple:
    """The index of the plane of ``ly`` the viewer shows, over its ``lead`` leading axes.

    The viewer's dims hold every layer's axes, right-aligned (a samples layer adds one in
    front), and its point is in world units (the layer's scale and translate): the point is
    mapped to the layer's data coordinates, not read as slider steps."""
    point = np.asarray(viewer.dims.point, float)[-ly.ndim:]
    data = np.asarray(ly.world_to_data(point), float)
    return tuple(int(np.clip(round(v), 0, n - 1))
                 for v, n in zip(data[:lead], ly.data.shape[:lead]))


def geometry(ly) -> dict:
    """The layer's scale, units and placement, for a result that must overlay it."""
    return {attr: getattr(ly, attr) for attr in ("scale", "translate", "units", "axis_labels",
                                                  "rotate", "shear") if hasattr(ly, attr)}


def duration(seconds: float) -> str:
    """'45 s', '3.5 min', '1 h 20 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def set_error(widget, error: bool):
    """Mark a field whose value the engine refused (its text is shown beside it)."""
    widget.native.setStyleSheet("background-color: #703030" if error else "")
