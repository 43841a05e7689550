"""A progress bar that repaints with the rest of the window, never on its own.

``QProgressBar.setValue`` repaints at once whenever its text changes. Under
software OpenGL every repaint of a window that holds napari's canvas
composites the whole window (10–15 ms on a 2-core CPU), so each training step
shown cost two composites: the bar's, then the loss curve's. Here the new value
is painted by the window's next ordinary update, together with the curve.
"""

from __future__ import annotations

from qtpy.QtWidgets import QProgressBar


class ProgressBar(QProgressBar):
    def setValue(self, value: int) -> None:  # noqa: N802 (Qt's name)
        self.setUpdatesEnabled(False)  # makes the repaint inside setValue a no-op
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)  # schedules an ordinary update
