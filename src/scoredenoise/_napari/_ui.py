"""Small pieces the plugin's magicgui containers share."""

from __future__ import annotations

from magicgui.widgets import Container, EmptyWidget, Label
from magicgui.widgets.bases import CategoricalWidget
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QSizePolicy


class Step(Container):
    """A step of the workflow: a magicgui container whose own attributes (methods, state)
    can be set and deleted like any object's (magicgui's ``del container.name`` removes a
    widget of that name, which broke patching a method in tests)."""

    def end(self):
        """After the last widget: the space left stays below it (a tab taller than its
        content spread the rows apart)."""
        self.native.layout().addStretch(1)

    def __delattr__(self, name):
        if any(w.name == name for w in self._list):
            super().__delattr__(name)
        else:
            object.__delattr__(self, name)

    def reset_choices(self, *_):
        """Refresh every choice (layers added, removed, renamed), keeping what was chosen:
        magicgui drops a renamed layer's entry and adds it anew, which lost the choice."""
        kept = [(w, w.value) for w in _categoricals(self)]
        super().reset_choices()
        for w, value in kept:
            if isinstance(value, list):  # a multiple choice
                w.value = [c for c in w.choices if c in value]
            elif value in w.choices:
                w.value = value


def _categoricals(container):
    for w in container:
        if isinstance(w, CategoricalWidget):
            yield w
        elif isinstance(w, Container):
            yield from _categoricals(w)


def form(*widgets) -> Container:
    """Labelled fields, one a row (the labels in a column)."""
    c = Container(widgets=list(widgets), labels=True)
    c.margins = (0, 0, 0, 0)
    return c


def row(*widgets) -> Container:
    """Widgets side by side, without labels."""
    c = Container(widgets=list(widgets), layout="horizontal", labels=False)
    c.margins = (0, 0, 0, 0)
    return c


def holder(qwidget, label: str = "") -> EmptyWidget:
    """A magicgui widget that holds a Qt widget magicgui has no counterpart for (a
    matplotlib canvas)."""
    w = EmptyWidget(label=label)
    w.native.layout().setContentsMargins(0, 0, 0, 0)
    w.native.layout().addWidget(qwidget)
    return w


def wrapped_label(text: str = "", **kw) -> Label:
    """A label whose text wraps to the dock's width (a long text, e.g. the estimate's
    summary, otherwise widened the dock's minimum and the tab was clipped on the right)."""
    lab = Label(value=text, **kw)
    lab.native.setWordWrap(True)
    # as wide as the dock gives (magicgui's labels are fixed at their preferred width),
    # and no minimum width of their own: the text wraps instead
    lab.native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    return lab


class _OnShow(QObject):
    """Call ``fn`` the first time a widget is shown (a hidden dock measures nothing)."""

    def __init__(self, widget, fn):
        super().__init__(widget)
        self._fn = fn
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Show and self._fn is not None:
            fn, self._fn = self._fn, None
            fn()
        return False


def on_first_show(qwidget, fn):
    """Call ``fn`` the first time ``qwidget`` is shown (a hidden dock measures nothing)."""
    qwidget._scoredenoise_on_show = _OnShow(qwidget, fn)
