"""The images panel: where the images come from, the list of images with each one's state, the number of
objects in the mask shown and in the accepted masks, moving between them, accepting a mask and where accepting
goes next."""

from __future__ import annotations

import numpy as np

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..annotation import AnnotationSession
from ..model.split import count_objects

ACCEPT_KEY, NEXT_KEY, PREVIOUS_KEY = "Shift-A", "PageDown", "PageUp"
STATE_MARKS = {"accepted": "✓", "edited": "✎", "predicted": "·", "unlabelled": " ", "unreadable": "⚠"}
AFTER_ACCEPT_CHOICES = {"next": "next unaccepted in the list", "informative": "most informative (suggested)"}
UNREADABLE_COLOUR = QColor(200, 90, 90)


class ObjectCounts:
    """The number of objects (distinct ids) in the mask shown and in every accepted mask, each mask counted once:
    an accepted mask by the time it was accepted, the mask shown by the array the store holds for it (a new
    prediction, draft or accept is a new array)."""

    def __init__(self):
        self._accepted: dict[str, tuple[str | None, int | None]] = {}
        self._shown: tuple[np.ndarray | None, int] = (None, 0)

    def _of(self, mask: np.ndarray) -> int:
        if mask is not self._shown[0]:
            self._shown = (mask, count_objects(mask))
        return self._shown[1]

    def current(self, session: AnnotationSession, key: str | None) -> int | None:
        """Objects in ``key``'s mask as kept in the project (None: no mask yet, or one of an older model)."""
        if key is None or key in session.unreadable or session.is_stale(key):
            return None
        store = session.store
        if store.record(key).state == "accepted":
            return self._of(store.accepted_mask(key))
        stored = store.prediction(key)
        return None if stored is None else self._of(stored[0])

    def accepted(self, session: AnnotationSession, current: str | None) -> tuple[int, int, int]:
        """(objects, images, images not counted yet) over the accepted masks. Only the current image's mask is
        read here (on the GUI thread); the others are counted by :meth:`count_missing`, in a worker."""
        store, total, missing = session.store, 0, 0
        keys = store.accepted_keys()
        for key in keys:
            at = store.record(key).accepted_at
            if key == current:  # it may be accepted again at once: its count follows the mask shown
                self._accepted[key] = (at, self._of(store.accepted_mask(key)))
            known = self._accepted.get(key)
            if known is None or known[0] != at:
                missing += 1
            elif known[1] is not None:  # None: its mask could not be read
                total += known[1]
        return total, len(keys), missing

    def count_missing(self, session: AnnotationSession):
        """Count the accepted masks not counted yet (for a worker: it reads each mask once)."""
        store = session.store
        for key in store.accepted_keys():
            at = store.record(key).accepted_at
            known = self._accepted.get(key)
            if known is None or known[0] != at:
                try:
                    count = count_objects(store.accepted_mask(key))
                except (OSError, ValueError):  # the store says why when the mask is opened; not counted
                    count = None
                self._accepted[key] = (at, count)
                yield key


def key_label(key: str) -> str:
    """napari's key name as Qt writes it on a button: Shift-A → Shift+A."""
    return key.replace("-", "+")


class ImagesPanel(QWidget):
    open_folder = Signal()
    use_layers = Signal()
    chosen = Signal(str)  # the user picked an image in the list
    previous = Signal()
    next = Signal()
    suggested = Signal()
    accept = Signal()
    after_accept_changed = Signal(str)
    counts_missing = Signal()  # some accepted masks are not counted yet: count them in the background

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.open_button = self._button("Open folder…", self.open_folder, "A folder of PNG, TIFF or JPEG images")
        self.layers_button = self._button("Use open image layers", self.use_layers)
        layout.addLayout(self._row(self.open_button, self.layers_button))
        self.project_label = QLabel("No project open")
        self.project_label.setWordWrap(True)
        layout.addWidget(self.project_label)
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)  # one line each: no per-item size queries on every re-layout
        self.list.setMinimumHeight(120)
        self.list.setToolTip("Each image's state and the model version its mask came from")
        self.list.itemActivated.connect(self._item_chosen)
        self.list.itemClicked.connect(self._item_chosen)
        layout.addWidget(self.list)
        self.counts = ObjectCounts()
        self.count_label = QLabel("")
        self.count_label.setToolTip("Objects (distinct labels) in the mask shown, as last kept, and in every "
                                    "accepted mask")
        layout.addWidget(self.count_label)
        self.previous_button = self._button("◀ Previous", self.previous, f"Previous readable image ({PREVIOUS_KEY})")
        self.next_button = self._button("Next ▶", self.next, f"Next readable image ({NEXT_KEY})")
        self.suggested_button = self._button("Go to suggested", self.suggested,
                                             "The unaccepted image the model is least sure about")
        layout.addLayout(self._row(self.previous_button, self.next_button, self.suggested_button))
        self.accept_button = self._button(f"Accept mask ({key_label(ACCEPT_KEY)})", self.accept,
                                          "Save the mask as corrected, then move on")
        self.accept_button.setStyleSheet("font-weight: bold; padding: 6px;")
        layout.addWidget(self.accept_button)
        self.after_accept = QComboBox()
        for value, text in AFTER_ACCEPT_CHOICES.items():
            self.after_accept.addItem(text, value)
        self.after_accept.setToolTip("Where accepting a mask goes next")
        self.after_accept.activated.connect(lambda i: self.after_accept_changed.emit(self.after_accept.itemData(i)))
        after = QHBoxLayout()
        after.addWidget(QLabel("After accept:"))
        after.addWidget(self.after_accept, 1)
        layout.addLayout(after)

    @staticmethod
    def _button(text: str, signal, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(signal.emit)
        return button

    @staticmethod
    def _row(*widgets: QWidget) -> QHBoxLayout:
        row = QHBoxLayout()
        for widget in widgets:
            row.addWidget(widget)
        return row

    def controls(self) -> list[QWidget]:
        """What works only with a project open."""
        return [self.list, self.previous_button, self.next_button, self.suggested_button, self.accept_button,
                self.after_accept]

    def show_settings(self, after_accept: str) -> None:
        self.after_accept.setCurrentIndex(max(0, self.after_accept.findData(after_accept)))

    def _item_chosen(self, item: QListWidgetItem) -> None:
        self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    def show_states(self, session: AnnotationSession, current: str | None, edited: bool) -> None:
        """Each image's state and where its mask came from; rows whose text is unchanged are left alone (a
        rebuild repaints the whole list, about 10 ms of the GUI thread on every navigation). ``edited``: the
        image shown holds an edit not yet kept as a draft."""
        keys = session.keys()
        listed = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
        self.list.blockSignals(True)
        if listed != keys:
            self.list.clear()
            for key in keys:
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, key)
                self.list.addItem(item)
        for row, key in enumerate(keys):
            status = session.image_status(key)
            if edited and key == current and status.state in ("predicted", "unlabelled"):
                status = status._replace(state="edited", stale=False)
            item = self.list.item(row)
            text = f"{STATE_MARKS[status.state]} {key}  ({status.describe(session.version_label)})"
            if item.text() != text:
                item.setText(text)
                item.setToolTip(text)  # in full, however narrow the dock
                item.setForeground(QBrush(UNREADABLE_COLOUR) if status.state == "unreadable" else QBrush())
            if key == current and self.list.currentRow() != row:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.show_counts(session, current)

    def show_counts(self, session: AnnotationSession, current: str | None) -> None:
        """The objects in the mask shown and in the accepted masks."""
        shown = self.counts.current(session, current)
        objects, images, missing = self.counts.accepted(session, current)
        here = "—" if shown is None else str(shown)
        text = f"Objects: {here} in this image · {objects} in {images} accepted image{'s' if images != 1 else ''}"
        if missing:
            text += f" (counting {missing} more…)"
            self.counts_missing.emit()
        if self.count_label.text() != text:
            self.count_label.setText(text)
