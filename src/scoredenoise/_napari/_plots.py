"""The plugin's two plots, drawn by matplotlib in a Qt canvas: the training loss (log scale,
validation beside it, the AR-DAE sigma_a schedule or range on a second axis) and the noise
level function (measured variance against mean, and the fitted model's curve), with axes,
units and legends. A live plot is redrawn at most a few times a second.
"""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

#: napari's dark theme, so the plots sit in a dock without a white box
_BG, _FG, _GRID = "#262930", "#d0d0d0", "#414851"
_TRAIN, _VAL, _SIGMA = "#5aa0ff", "#ffa03c", "#9a9a9a"

#: seconds between two redraws of a live plot (a redraw costs 20-40 ms)
REDRAW_EVERY = 0.5


def _style(ax):
    ax.set_facecolor(_BG)
    for side in ax.spines.values():
        side.set_color(_FG)
    ax.tick_params(colors=_FG, labelsize=7)
    ax.xaxis.label.set_color(_FG)
    ax.yaxis.label.set_color(_FG)
    ax.xaxis.label.set_fontsize(8)
    ax.yaxis.label.set_fontsize(8)


class _Plot(FigureCanvasQTAgg):
    def __init__(self, height: int):
        fig = Figure(figsize=(3.2, height / 100), dpi=100, facecolor=_BG,
                     layout="constrained")
        super().__init__(fig)
        self.setMinimumHeight(height)
        self.setMaximumHeight(int(height * 1.6))
        self.ax = fig.add_subplot()
        _style(self.ax)
        self._drawn_at = 0.0

    def _legend(self, *axes):
        handles, labels = [], []
        for ax in axes:
            h, lab = ax.get_legend_handles_labels()
            handles += h
            labels += lab
        if handles:
            leg = self.ax.legend(handles, labels, fontsize=7, loc="best",
                                 facecolor=_BG, edgecolor=_GRID, labelcolor=_FG)
            leg.set_zorder(10)

    def _redraw(self, force: bool):
        now = time.monotonic()
        if force or now - self._drawn_at >= REDRAW_EVERY:
            self._drawn_at = now
            self.draw_idle()


class LossPlot(_Plot):
    """Live training loss (log scale) against steps; validation loss when held out; the
    AR-DAE perturbation on a second axis: the annealed sigma_a of the paper's network, or
    the sampled range of a sigma-conditioned one (narrowed once to the data)."""

    def __init__(self, parent=None):
        super().__init__(130)
        if parent is not None:
            self.setParent(parent)
        self.sigma_ax = self.ax.twinx()
        _style(self.sigma_ax)
        self.loss: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        #: (step, low, high) of sigma_a: low == high for an annealed schedule
        self.sigma: list[tuple[int, float, float]] = []
        self._draw(force=True)

    def add(self, step, logs):
        self.loss.append((step, float(logs["loss"])))
        if "val_loss" in logs:
            self.val.append((step, float(logs["val_loss"])))
        if logs.get("sigma_a") is not None:
            self.sigma.append((step, float(logs["sigma_a"]), float(logs["sigma_a"])))
        elif logs.get("sigma_range") is not None:
            lo, hi = logs["sigma_range"]
            self.sigma.append((step, float(lo), float(hi)))
        self._draw(force=False)

    def clear(self):
        self.loss, self.val, self.sigma = [], [], []
        self._draw(force=True)

    def finish(self):
        """Draw what is left (the last steps fall between two throttled redraws)."""
        self._draw(force=True)

    def _draw(self, force: bool):
        if not force and time.monotonic() - self._drawn_at < REDRAW_EVERY:
            return
        ax, sax = self.ax, self.sigma_ax
        ax.clear()
        sax.clear()  # (clearing a twin axis moves its ticks and label back to the left)
        sax.yaxis.tick_right()
        sax.yaxis.set_label_position("right")
        _style(ax)
        _style(sax)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        sax.set_ylabel("sigma_a")
        ax.grid(True, color=_GRID, linewidth=0.5)
        positive = [(s, v) for s, v in self.loss if v > 0]
        if positive:
            ax.set_yscale("log")
            ax.plot(*zip(*positive), color=_TRAIN, linewidth=1, label="training loss")
        val = [(s, v) for s, v in self.val if v > 0]
        if val:
            ax.plot(*zip(*val), "o-", color=_VAL, markersize=3, linewidth=1,
                    label="validation loss")
        if self.sigma:
            steps, lo, hi = zip(*self.sigma)
            sax.set_yscale("log")
            if lo == hi:
                sax.plot(steps, lo, "--", color=_SIGMA, linewidth=1, label="sigma_a")
            else:
                sax.fill_between(steps, lo, hi, color=_SIGMA, alpha=0.2, linewidth=0,
                                 label="sigma_a range")
        else:
            sax.set_yticks([])
        self._legend(ax, sax)
        self._redraw(force=True)


class NoiseLevelPlot(_Plot):
    """Measured noise variance against the mean level (points) and the fitted noise
    model's curve (line), in the layer's units."""

    def __init__(self, parent=None):
        super().__init__(130)
        if parent is not None:
            self.setParent(parent)
        self.points: list[tuple[float, float]] = []
        self.curve: list[tuple[float, float]] = []
        self.unit = "data units"
        self._draw()

    def show_fit(self, mean, variance, curve_mean, curve_variance, unit=None):
        self.points = list(zip(map(float, mean), map(float, variance)))
        self.curve = list(zip(map(float, curve_mean), map(float, curve_variance)))
        if unit:
            self.unit = unit
        self._draw()

    def _draw(self):
        ax = self.ax
        ax.clear()
        _style(ax)
        ax.grid(True, color=_GRID, linewidth=0.5)
        ax.set_xlabel(f"mean ({self.unit})")
        ax.set_ylabel(f"variance ({self.unit}²)")
        if self.points:
            ax.plot(*zip(*self.points), "o", color=_TRAIN, markersize=3, label="measured")
        if self.curve:
            ax.plot(*zip(*self.curve), color=_VAL, linewidth=1.5, label="noise model")
        ax.set_ylim(bottom=0)
        self._legend(ax)
        self._redraw(force=True)
