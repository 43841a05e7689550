"""A small live plot of the training loss.

matplotlib is not imported with the dock: that would add about a second to
napari's start-up before the first prediction. :meth:`LossPlot.warm_up`
imports it on a background thread once the viewer has something to show, and
the figure is built when the first refinement starts.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

HEIGHT = 170


def _import_matplotlib() -> None:
    import matplotlib.backends.backend_qtagg  # noqa: F401
    import matplotlib.figure  # noqa: F401


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.canvas = None
        self._warming = False
        self.placeholder = QLabel("The loss curve appears here while the model refines.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setFixedHeight(HEIGHT)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.placeholder)

    def warm_up(self) -> None:
        """Import matplotlib off the GUI thread, so the first refinement does not stall the viewer."""
        if self.canvas is None and not self._warming:
            self._warming = True
            threading.Thread(target=_import_matplotlib, name="import matplotlib", daemon=True).start()

    def _ensure_canvas(self) -> None:
        if self.canvas is not None:
            return
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 1.8), dpi=90)
        self.figure.subplots_adjust(left=0.2, right=0.97, top=0.95, bottom=0.24)  # fixed: re-laying out every draw is slow
        self.figure.patch.set_alpha(0.0)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(HEIGHT)
        self.axes = self.figure.add_subplot(111)
        (self.line,) = self.axes.plot([], [], color="#f0a030", lw=1.5)
        self._style()
        self._layout.replaceWidget(self.placeholder, self.canvas)
        self.placeholder.hide()

    def _style(self) -> None:
        ax = self.axes
        ax.set_facecolor("none")
        for spine in ax.spines.values():
            spine.set_color("#888888")
        ax.tick_params(colors="#aaaaaa", labelsize=7)
        ax.set_xlabel("step", color="#aaaaaa", fontsize=7)
        ax.set_ylabel("loss", color="#aaaaaa", fontsize=7)

    def clear(self) -> None:
        self._ensure_canvas()
        self.steps, self.losses = [], []
        self.line.set_data([], [])
        self.canvas.draw_idle()

    def add(self, step: int, loss: float) -> None:
        self._ensure_canvas()
        self.steps.append(step)
        self.losses.append(loss)
        self.line.set_data(self.steps, self.losses)
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw_idle()
