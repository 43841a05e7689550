"""A column of controls that scrolls vertically when its dock is too short for it.

Without it, Qt squeezes the controls of a dock under their minimum sizes when
the window is short, and the bottom ones (the loss curve's axis, the status
lines) are drawn past the edge of their box and cut off.

QScrollArea's own ``widgetResizable`` sizes the column to its *preferred*
height for the width (word-wrapped labels make the layout height-for-width),
so it scrolls early and grows the image list. This column gets the
viewport's size, and never less than the height its controls need at that
width; its minimum width is the dock's, so nothing is cut at the side.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtGui import QResizeEvent
from qtpy.QtWidgets import QFrame, QScrollArea, QStyle, QVBoxLayout, QWidget


class ScrollColumn(QScrollArea):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.column = QWidget()
        self.column_layout = QVBoxLayout(self.column)
        margins = self.column_layout.contentsMargins()
        self.column_layout.setContentsMargins(margins.left(), 4, margins.right(), 4)  # a dock's height is scarce
        self.setWidget(self.column)
        self._minimum_width = -1
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self._fit_column)
        self.column.installEventFilter(self)  # a control that grows or shrinks re-fits the column

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.column and event.type() == QEvent.Type.LayoutRequest:
            width = self.column.minimumSizeHint().width()
            if width != self._minimum_width:  # only then: a re-layout of the whole window is a costly repaint
                self._minimum_width = width
                self.updateGeometry()  # the column's minimum width is this area's: the dock re-reads it
            self._refit.start()  # once the column has laid out its controls' new sizes
        return super().eventFilter(watched, event)

    def minimum_column_height(self, width: int) -> int:
        """The least height at which no control of the column is squeezed, at ``width``. A vertical box lays
        out a height-for-width control (a word-wrapped label) at its preferred height for the width, but
        counts it at its minimum in ``minimumHeightForWidth``, so that figure falls short."""
        layout = self.column_layout
        margins = layout.contentsMargins()
        inner = width - margins.left() - margins.right()
        items = [layout.itemAt(i) for i in range(layout.count())]
        heights = [item.heightForWidth(inner) if item.hasHeightForWidth() else item.minimumSize().height()
                   for item in items if not item.isEmpty()]
        return sum(heights) + max(0, layout.spacing()) * max(0, len(heights) - 1) + margins.top() + margins.bottom()

    def _fit_column(self) -> None:
        width = self.viewport().width()
        self.column.resize(width, max(self.viewport().height(), self.minimum_column_height(width)))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_column()

    def _scroll_bar_room(self) -> int:
        style = self.style()
        return (style.pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
                + max(0, style.pixelMetric(QStyle.PixelMetric.PM_ScrollView_ScrollBarSpacing, None, self))
                + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.column.minimumSizeHint().width() + self._scroll_bar_room(), 0)

    def sizeHint(self) -> QSize:
        hint = self.column.sizeHint()
        return QSize(hint.width() + self._scroll_bar_room(), hint.height())
