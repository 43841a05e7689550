"""A combo box whose long entries do not widen the dock (and narrow napari's canvas): it is as wide as the dock
makes it, and an entry longer than that is elided in the box and shown whole in the open list."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox


def compact_combo(minimum_chars: int = 12) -> QComboBox:
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(minimum_chars)
    return combo
