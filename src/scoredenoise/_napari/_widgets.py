"""The plugin's dock widgets: the numbered workflow in one dock (1 Train or load, 2 Noise
model, 3 Denoise), and each step as a dock of its own.

The steps are magicgui containers (``_train``, ``_noise``, ``_denoise``) sharing one session
per viewer (``_session``); they call only the public API, and long work runs in napari
worker threads with progress, Cancel and errors shown as notifications.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QStyle, QTabWidget, QVBoxLayout, QWidget

from ._denoise import LAZY_DEPTH, DenoiseWidget
from ._noise import NoiseModelWidget
from ._plots import LossPlot, NoiseLevelPlot
from ._session import Session, get_session
from ._train import TrainWidget


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
        self.tabs = QTabWidget()  # (magicgui has no tabs)
        for title, page in zip(self.STEPS, (self.train, self.noise, self.denoise)):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # wrap, not scroll
            scroll.setWidget(page.native)
            self.tabs.addTab(scroll, title)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)
        # the steps' widths count (the tabs scroll only vertically: a narrower dock clipped
        # the fields on the right); see minimumSizeHint
        # the next step is one click away: a model ready leads to the noise model
        self.train.session.model_changed.connect(self._model_ready)

    def minimumSizeHint(self):
        """As wide as the widest step needs, with its vertical scroll bar."""
        hint = super().minimumSizeHint()
        bar = self.style().pixelMetric(QStyle.PM_ScrollBarExtent)
        need = max(p.native.minimumSizeHint().width()
                   for p in (self.train, self.noise, self.denoise)) + bar + 8
        return QSize(max(hint.width(), need), hint.height())

    def _model_ready(self, *_):
        if self.tabs.currentIndex() == 0:
            self.tabs.setCurrentIndex(1)


__all__ = [
    "LAZY_DEPTH",
    "DenoiseWidget",
    "LossPlot",
    "NoiseLevelPlot",
    "NoiseModelWidget",
    "ScoreDenoiseWidget",
    "Session",
    "TrainWidget",
    "get_session",
]
