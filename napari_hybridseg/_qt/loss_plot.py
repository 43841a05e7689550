"""A small live plot of the training loss."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.figure = Figure(figsize=(3.2, 1.8), dpi=90, tight_layout=True)
        self.figure.patch.set_alpha(0.0)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(170)
        self.axes = self.figure.add_subplot(111)
        (self.line,) = self.axes.plot([], [], color="#f0a030", lw=1.5)
        self._style()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.steps: list[int] = []
        self.losses: list[float] = []

    def _style(self) -> None:
        ax = self.axes
        ax.set_facecolor("none")
        for spine in ax.spines.values():
            spine.set_color("#888888")
        ax.tick_params(colors="#aaaaaa", labelsize=7)
        ax.set_xlabel("step", color="#aaaaaa", fontsize=7)
        ax.set_ylabel("loss", color="#aaaaaa", fontsize=7)

    def clear(self) -> None:
        self.steps, self.losses = [], []
        self.line.set_data([], [])
        self.canvas.draw_idle()

    def add(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self.line.set_data(self.steps, self.losses)
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw_idle()
