"""A small live plot of the training loss.

matplotlib is imported when the first refinement starts, not with the dock:
it would add about a second to napari's start-up before the first prediction.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

HEIGHT = 170


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.canvas = None
        self.placeholder = QLabel("The loss curve appears here while the model refines.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setFixedHeight(HEIGHT)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.placeholder)

    def _ensure_canvas(self) -> None:
        if self.canvas is not None:
            return
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 1.8), dpi=90, tight_layout=True)
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
