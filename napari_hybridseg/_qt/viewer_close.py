"""Knowing that the napari window is closing, before napari tears down what the dock works on.

``Viewer.close()`` removes every layer, then closes the canvas widget (``QtViewer``) and the main window;
closing the window from its title bar closes only the main window, which Qt deletes later. A background
result that reaches the dock in between would add layers to a viewer whose Qt side is gone. The dock
hears of both closes here, ahead of napari's own handlers.
"""

from __future__ import annotations

from typing import Callable

from qtpy.QtCore import QEvent, QObject


class _CloseFilter(QObject):
    def __init__(self, on_close: Callable[[], None], parent: QObject):
        super().__init__(parent)
        self._on_close = on_close

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Close:
            self._on_close()
        return False  # napari still handles the close as it would


def on_viewer_closing(viewer, canvas_closing: Callable[[], None], window_closing: Callable[[], None]) -> None:
    """Call ``canvas_closing`` when napari tears the viewer down (``Viewer.close()``; this close cannot be
    refused) and ``window_closing`` when the main window is asked to close (the user may still refuse it in
    napari's confirmation dialog, so keep what must not be lost, and stop nothing)."""
    window = getattr(viewer, "window", None)
    for widget_name, callback in (("_qt_viewer", canvas_closing), ("_qt_window", window_closing)):
        widget = getattr(window, widget_name, None)  # private in napari, with no public equivalent
        if isinstance(widget, QObject):
            widget.installEventFilter(_CloseFilter(callback, widget))
