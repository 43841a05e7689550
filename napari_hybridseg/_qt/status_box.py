"""The dock's status lines: every message readable whole, however long.

A fixed height (a message that wraps differently must not re-lay out, and repaint, the whole window), word
wrap, a scroll bar when a message needs more lines, selectable text (to copy a path or an error), and the
whole message as the tooltip.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QTextOption
from qtpy.QtWidgets import QFrame, QPlainTextEdit, QWidget

STATUS_LINES = 4


class StatusBox(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None, lines: int = STATUS_LINES):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.viewport().setAutoFillBackground(False)  # reads as text on the dock, not as an input field
        margins = self.contentsMargins()
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + 2 * int(self.document().documentMargin())
                            + margins.top() + margins.bottom())

    def setText(self, text: str) -> None:  # noqa: N802 (QLabel's name, which it replaces)
        if text != self.toPlainText():
            self.setPlainText(text)
            self.setToolTip(text)

    def text(self) -> str:
        return self.toPlainText()
