"""The active-learning panel: the images the model is least sure about, and its disagreement map layer."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QCheckBox, QGroupBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

DISAGREEMENT_LAYER = "hybridseg disagreement"
TOP_N = 5


class SuggestionPanel(QGroupBox):
    """The top of the disagreement ranking (click an entry to go there) and the map checkbox."""

    chosen = Signal(str)

    def __init__(self, top: int = TOP_N, parent: QWidget | None = None):
        super().__init__("Most informative next (model disagreement)", parent)
        self.top = top
        layout = QVBoxLayout(self)
        self.status = QLabel("Not scored yet")
        self.status.setWordWrap(True)
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)  # one line each: no per-item size queries on every re-layout
        self.list.setToolTip("Unaccepted images whose diffusion samples disagree most (mean BALD, nats)")
        row = self.list.fontMetrics().height() + 1
        self.list.setMaximumHeight(row * top + 2 * self.list.frameWidth() + 4)  # the top rows, no empty ones
        self.list.itemClicked.connect(self._chose)
        self.list.itemActivated.connect(self._chose)
        self.show_map = QCheckBox("Show disagreement")
        self.show_map.setToolTip("Overlay the current image's per-pixel disagreement across diffusion samples")
        for widget in (self.status, self.list, self.show_map):
            layout.addWidget(widget)

    def set_ranking(self, ranking: Sequence[tuple[str, float]]) -> None:
        """Show the top of ``ranking``, changing only the rows that differ: rebuilding the list re-lays it
        out and repaints the window, tens of milliseconds of the GUI thread under software OpenGL."""
        shown = ranking[: self.top]
        while self.list.count() > len(shown):
            self.list.takeItem(self.list.count() - 1)
        while self.list.count() < len(shown):
            self.list.addItem(QListWidgetItem())
        for row, (key, score) in enumerate(shown):
            item = self.list.item(row)
            text = f"{key}   {score:.4f}"
            if item.text() != text:
                item.setText(text)
            if item.data(Qt.ItemDataRole.UserRole) != key:
                item.setData(Qt.ItemDataRole.UserRole, key)

    def keys(self) -> list[str]:
        """The keys listed, top first."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def _chose(self, item: QListWidgetItem) -> None:
        self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))


def show_disagreement(viewer, pixel_map: np.ndarray) -> None:
    """Add or update the disagreement layer, just under the mask, leaving the active layer as it was."""
    if DISAGREEMENT_LAYER in viewer.layers:
        layer = viewer.layers[DISAGREEMENT_LAYER]
        layer.data = pixel_map
        layer.reset_contrast_limits()
        layer.visible = True
        return
    active = viewer.layers.selection.active
    viewer.add_image(pixel_map, name=DISAGREEMENT_LAYER, colormap="magma", blending="additive", opacity=0.5)
    if active is not None:
        viewer.layers.move(viewer.layers.index(DISAGREEMENT_LAYER), viewer.layers.index(active))
        viewer.layers.selection.active = active  # keep painting on the mask


def hide_disagreement(viewer, remove: bool = False) -> None:
    """Hide the layer (e.g. while the next map is computed), or remove it."""
    if DISAGREEMENT_LAYER in viewer.layers:
        if remove:
            viewer.layers.remove(DISAGREEMENT_LAYER)
        else:
            viewer.layers[DISAGREEMENT_LAYER].visible = False
