"""The dock's scroll column: scrolls when short, never squeezes a control, never cuts one at the side."""

import pytest
from qtpy.QtWidgets import QLabel, QListWidget, QWidget

from napari_hybridseg._qt.scroll_column import ScrollColumn


@pytest.fixture
def column(qtbot):
    area = ScrollColumn()
    qtbot.addWidget(area)
    area.wrapped = QLabel("a long explanation that wraps onto several lines in a narrow dock " * 3)
    area.wrapped.setWordWrap(True)
    area.box = QWidget()
    area.box.setFixedHeight(200)
    area.listing = QListWidget()
    area.listing.setMinimumHeight(120)
    for widget in (area.wrapped, area.box, area.listing):
        area.column_layout.addWidget(widget)
    area.column_layout.addStretch(1)
    area.resize(300, 800)
    area.show()
    qtbot.waitExposed(area)
    return area


def squeezed(area):
    return [w for w in (area.wrapped, area.box, area.listing)
            if w.height() < (w.heightForWidth(w.width()) if w.hasHeightForWidth()
                             else max(w.minimumHeight(), w.minimumSizeHint().height()))]


def test_a_tall_area_shows_everything_without_scrolling(column, qtbot):
    qtbot.waitUntil(lambda: column.column.height() == column.viewport().height())
    assert column.verticalScrollBar().maximum() == 0
    assert not squeezed(column)


def test_a_short_area_scrolls_and_squeezes_nothing(column, qtbot):
    column.resize(300, 250)
    qtbot.waitUntil(lambda: column.verticalScrollBar().maximum() > 0)
    assert not squeezed(column)
    assert column.column.height() >= column.minimum_column_height(column.viewport().width())


def test_the_area_is_never_narrower_than_its_controls(column):
    column.column_layout.addWidget(QLabel("an unwrapped label that sets a minimum width of its own"))
    assert column.minimumSizeHint().width() > column.column.minimumSizeHint().width()


def test_a_control_that_grows_refits_the_column(column, qtbot):
    column.resize(300, 400)
    qtbot.waitUntil(lambda: column.verticalScrollBar().maximum() >= 0)
    column.box.setFixedHeight(600)
    qtbot.waitUntil(lambda: column.column.height() >= 600 + column.wrapped.height() + column.listing.height())
    assert column.box.height() == 600 and not squeezed(column)
