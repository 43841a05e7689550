"""The dock's keys, wherever the keyboard focus is in napari's window.

napari's own key bindings (``viewer.bind_key``) reach only the canvas: after a file dialog, or a click on
the dock, the focus is elsewhere and they do nothing until the canvas is clicked. So each key is also a
window-wide Qt shortcut owned by the dock. Qt offers a key press to the shortcuts first, so one press is
handled once: by the shortcut, or by napari's binding when the canvas claims the key. A text field keeps
the keys that type (Shift+A types "A" in a layer's name).
"""

from __future__ import annotations

from typing import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import QWidget

_QT_NAMES = {"PageDown": "PgDown", "PageUp": "PgUp"}


def qt_key_sequence(napari_key: str) -> QKeySequence:
    """napari's key name (``Shift-A``, ``PageDown``) as a Qt key sequence."""
    parts = [_QT_NAMES.get(part, part) for part in napari_key.split("-")]
    return QKeySequence("+".join(parts))


def bind_keys(viewer, owner: QWidget, actions: dict[str, Callable[[], None]]) -> list[QShortcut]:
    """Bind each napari key name in ``actions`` in napari's keymap and as a shortcut of ``owner``'s window
    (gone with ``owner``)."""
    shortcuts = []
    for key, action in actions.items():
        viewer.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)
        shortcut = QShortcut(qt_key_sequence(key), owner)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(action)
        shortcuts.append(shortcut)
    return shortcuts
