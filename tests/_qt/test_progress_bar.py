"""The refinement's progress bar paints with the window's next update, never synchronously in setValue."""

from qtpy.QtCore import QEvent, QObject

from napari_hybridseg._qt.progress_bar import ProgressBar


class PaintCounter(QObject):
    def __init__(self):
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def test_a_new_value_is_painted_by_the_next_update_not_inside_set_value(qtbot):
    bar = ProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 100)
    bar.setFormat("%v/%m steps")
    counter = PaintCounter()
    bar.installEventFilter(counter)
    bar.show()
    qtbot.waitUntil(lambda: counter.paints > 0, timeout=5_000)  # shown: a plain QProgressBar repaints at once now
    counter.paints = 0

    bar.setValue(40)  # the text changes: QProgressBar itself would repaint right here

    assert bar.value() == 40 and bar.text() == "40/100 steps"
    assert counter.paints == 0
    assert bar.updatesEnabled()
    qtbot.waitUntil(lambda: counter.paints > 0, timeout=5_000)
