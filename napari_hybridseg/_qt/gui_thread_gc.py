"""Python's cyclic garbage collected on the GUI thread only, while the dock lives.

CPython runs a collection in whichever thread happens to allocate past the
threshold: with the dock's workers (prediction, ranking, the refinement's
reports) allocating all the time, that is often a worker thread, and a Qt
object caught in a reference cycle would then be destroyed there, outside the
thread that owns it, which Qt does not allow (it may crash). pyqtgraph's
``GarbageCollector`` exists for the same reason; this one also gives automatic
collection back when the dock goes, and looks every 100 ms.
"""

from __future__ import annotations

import gc

from qtpy.QtCore import QObject, QTimer

INTERVAL_MS = 100


class GuiThreadGarbageCollector(QObject):
    """Disables automatic collection and collects each generation on a timer of the thread that made it
    (make it on the GUI thread) once its count passes the usual threshold; :meth:`stop` restores it."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        gc.disable()
        self._timer.start()
        self.destroyed.connect(gc.enable)  # a plain function: it must not keep this object alive

    def collect(self) -> None:
        counts = gc.get_count()
        generation = -1
        for g in range(3):  # a generation is collected only with the younger ones, as CPython does
            if counts[g] <= self._thresholds[g]:
                break
            generation = g
        if generation >= 0:
            gc.collect(generation)

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()
