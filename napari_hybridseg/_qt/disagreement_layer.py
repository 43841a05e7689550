"""The disagreement map layer and its colour scale.

The map lies under the mask (which stays visible and the layer being edited). Its colours run from fully
transparent where the diffusion samples agree, through cyan, to yellow where they disagree most: cyan is
the complement of the pinks and purples of stained tissue, neither is a skin or grey tone, and agreement
leaves the image itself untouched. The scale under the suggestions says what the colours mean.
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import Colormap
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QLinearGradient, QPainter
from qtpy.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

DISAGREEMENT_LAYER = "hybridseg disagreement"
COLOURS = ((0.0, 1.0, 1.0, 0.0), (0.0, 1.0, 1.0, 0.55), (0.55, 1.0, 0.2, 0.8), (1.0, 1.0, 0.0, 0.95))
CONTROLS = (0.0, 0.3, 0.65, 1.0)
DISAGREEMENT_COLORMAP = Colormap(colors=np.array(COLOURS), controls=np.array(CONTROLS), name="hybridseg disagreement")


def show_disagreement(viewer, pixel_map: np.ndarray) -> float:
    """Add or update the disagreement layer just under the mask, leaving the active layer as it was;
    returns the top of its colour scale (the map's largest value)."""
    top = float(np.nanmax(pixel_map)) if pixel_map.size else 0.0
    limits = (0.0, top if top > 0 else 1.0)
    if DISAGREEMENT_LAYER in viewer.layers:
        layer = viewer.layers[DISAGREEMENT_LAYER]
        layer.data = pixel_map
        layer.contrast_limits = limits
        layer.visible = True
        return limits[1]
    active = viewer.layers.selection.active
    viewer.add_image(pixel_map, name=DISAGREEMENT_LAYER, colormap=DISAGREEMENT_COLORMAP, blending="translucent",
                     opacity=0.8, contrast_limits=limits)
    if active is not None:
        viewer.layers.move(viewer.layers.index(DISAGREEMENT_LAYER), viewer.layers.index(active))
        viewer.layers.selection.active = active  # keep painting on the mask
    return limits[1]


def hide_disagreement(viewer, remove: bool = False) -> None:
    """Hide the layer (e.g. while the next map is computed), or remove it."""
    if DISAGREEMENT_LAYER in viewer.layers:
        if remove:
            viewer.layers.remove(DISAGREEMENT_LAYER)
        else:
            viewer.layers[DISAGREEMENT_LAYER].visible = False


class _Gradient(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFixedHeight(12)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        rect = QRectF(self.rect())
        painter.fillRect(rect, QColor(128, 128, 128))  # transparency shows as the grey behind
        gradient = QLinearGradient(rect.topLeft(), rect.topRight())
        for control, (r, g, b, a) in zip(CONTROLS, COLOURS):
            gradient.setColorAt(control, QColor.fromRgbF(r, g, b, a))
        painter.fillRect(rect, gradient)
        painter.end()


class ColourScale(QWidget):
    """The map's colours from "samples agree" (0) to "samples disagree" (the map's largest value)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addWidget(_Gradient())
        ends = QHBoxLayout()
        self.low = QLabel("0: samples agree (clear)")
        self.high = QLabel("")
        self.high.setAlignment(Qt.AlignmentFlag.AlignRight)
        ends.addWidget(self.low)
        ends.addWidget(self.high)
        layout.addLayout(ends)
        self.setToolTip("Per-pixel disagreement across the model's diffusion samples (BALD, nats): high where "
                        "the mask is least certain, so where a correction teaches the model most")
        self.set_top(None)

    def set_top(self, top: float | None) -> None:
        self.high.setText("computing…" if top is None else f"{top:.3f}: disagree most (yellow)")
