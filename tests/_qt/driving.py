"""Driving the dock as a user does: napari's mouse callbacks for a brush stroke, the dock's own buttons."""

from __future__ import annotations

import shutil
from pathlib import Path

from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

from napari_hybridseg._qt.dock import MASK_LAYER, HybridSegDock
from napari_hybridseg.resources import SAMPLE_DOMAIN, sample_data_root

FAST_REFINE = {"refine_steps": 6, "refine_batch_size": 2, "refine_crop": 64}


def sample_folder(folder: Path, n: int = 7) -> Path:
    """``n`` images of the bundled sample copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((sample_data_root() / SAMPLE_DOMAIN / "images").glob("*.png"))[:n]:
        shutil.copy(path, folder / path.name)
    return folder


def brush_stroke(layer, start, end, label, MouseEvent, brush_size: int = 9, pick_tool: bool = True):
    """Press, drag and release with the paint brush, as napari's mouse bindings see it; ``pick_tool``
    first picks the brush, its size and the label (as the layer controls do)."""
    if pick_tool:
        layer.mode = "paint"
        layer.selected_label = label
        layer.brush_size = brush_size
    for kind, pos, dragging, callbacks in (("mouse_press", start, False, mouse_press_callbacks),
                                           ("mouse_move", end, True, mouse_move_callbacks),
                                           ("mouse_release", end, False, mouse_release_callbacks)):
        event = MouseEvent(type=kind, is_dragging=dragging, position=pos, view_direction=None,
                           dims_displayed=(0, 1), dims_point=(0, 0))
        callbacks(layer, ReadOnlyWrapper(event))


def export_and_wait(qtbot, dock, fmt, path):
    """Export as the buttons do (in a worker) and wait for it to finish; returns the path."""
    assert dock.export(fmt, path) is not None
    qtbot.waitUntil(lambda: dock.exports.worker is None, timeout=60_000)
    return path


def wait_for_prediction(qtbot, dock):
    qtbot.waitUntil(lambda: dock.viewer.layers[MASK_LAYER].editable, timeout=60_000)


def open_dock(make_napari_viewer, folder, choose_start_model: bool = False):
    viewer = make_napari_viewer()
    dock = HybridSegDock(viewer, device="cpu", choose_start_model=choose_start_model)
    viewer.window.add_dock_widget(dock)
    assert dock.open_folder(folder)
    return viewer, dock


def list_text(dock, key: str) -> str:
    """The image list's row for ``key``, as the user reads it."""
    rows = [dock.images.list.item(i) for i in range(dock.images.list.count())]
    return next(row.text() for row in rows if row.data(0x0100) == key)  # Qt.UserRole
