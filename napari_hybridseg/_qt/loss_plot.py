"""A small live plot of the training loss, drawn with pyqtgraph.

pyqtgraph draws a new point in about a millisecond (matplotlib's Agg redraw of
the axes took 30–150 ms on the GUI thread while a refinement shared the CPU).
It is imported on a background thread by :meth:`LossPlot.warm_up` once the
viewer has something to show, and the plot is built right after, so neither
napari's start-up nor the first refinement waits for it.

The axes are set by hand, not auto-ranged: x spans the refinement's steps from
the start and y grows only when a loss leaves it. Auto-ranging re-laid out the
axes for every point, a second window repaint that made each point shown an
event-loop stall of 35–50 ms under software OpenGL while training shared the CPU.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

HEIGHT = 145
LINE_COLOUR = "#f0a030"
AXIS_COLOUR = "#aaaaaa"
AXIS_HEIGHT = 42
Y_HEADROOM = 1.1  # the y axis grows to this multiple of the largest loss, so it rarely has to grow again


def _import_pyqtgraph() -> None:
    import pyqtgraph  # noqa: F401


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.plot = None
        self._warming = False
        self.placeholder = QLabel("The loss curve appears here while the model refines.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.setFixedHeight(HEIGHT)  # the plot fills this box: a squeezed dock shrinks the plot, never clips its x axis
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.placeholder)

    def warm_up(self) -> None:
        """Import pyqtgraph off the GUI thread, then build the plot: done before the first refinement,
        whose start would otherwise stall the viewer with the import, the widget swap and its first paint."""
        if self.plot is None and not self._warming:
            self._warming = True
            importer = threading.Thread(target=_import_pyqtgraph, name="import pyqtgraph", daemon=True)
            importer.start()
            poll = QTimer(self)
            poll.setInterval(100)
            poll.timeout.connect(lambda: importer.is_alive() or (poll.stop(), self._ensure_plot()))
            poll.start()

    def _ensure_plot(self) -> None:
        if self.plot is not None:
            return
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(background=None)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        for side, label in (("bottom", "step"), ("left", "loss")):
            axis = self.plot.getAxis(side)
            axis.setPen(AXIS_COLOUR)
            axis.setTextPen(AXIS_COLOUR)
            axis.setLabel(label, color=AXIS_COLOUR)
            axis.enableAutoSIPrefix(False)  # "loss", never "loss (x0.001)"
        self.plot.getAxis("bottom").setHeight(AXIS_HEIGHT)  # room for the tick labels and the axis label
        self.plot.disableAutoRange()
        self.line = self.plot.plot([], [], pen=pg.mkPen(LINE_COLOUR, width=1.5))
        self._layout.replaceWidget(self.placeholder, self.plot)
        self.placeholder.hide()

    def clear(self, total_steps: int | None = None) -> None:
        """Forget the curve; ``total_steps`` (when known) fixes the x axis for the whole refinement."""
        self._ensure_plot()
        self.steps, self.losses = [], []
        self.line.setData([], [])
        if total_steps:
            self.plot.setXRange(0, total_steps, padding=0)

    def add(self, step: int, loss: float) -> None:
        self._ensure_plot()
        self.steps.append(step)
        self.losses.append(loss)
        self.line.setData(self.steps, self.losses)
        (x_low, x_high), (y_low, y_high) = self.plot.viewRange()
        if step > x_high:  # more steps than announced, or none announced
            self.plot.setXRange(0, step, padding=0)
        if len(self.losses) == 1 or not y_low <= loss <= y_high:
            self.plot.setYRange(min(0.0, min(self.losses)), Y_HEADROOM * max(max(self.losses), 1e-6), padding=0)
