"""Drive the real dock in a real napari window (for screenshots and latency benchmarks)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_hybridseg.resources import SAMPLE_DOMAIN, sample_data_root


def sample_copy(n_images: int = 16) -> Path:
    """A fresh folder with the bundled sample's pool images (so no earlier project is resumed)."""
    folder = Path(tempfile.mkdtemp(prefix="hybridseg-gui-")) / "images"
    folder.mkdir()
    for path in sorted((sample_data_root() / SAMPLE_DOMAIN / "images").glob("*.png"))[:n_images]:
        shutil.copy(path, folder / path.name)
    return folder


def dock_on_sample(**dock_widget_options):
    """A real napari window with the dock open on a fresh copy of the bundled sample, as the main job opens it:
    (viewer, dock)."""
    import napari

    from napari_hybridseg._qt.dock import HybridSegDock

    viewer = napari.Viewer(title="napari-hybridseg")
    dock = HybridSegDock(viewer, device="cpu", choose_start_model=False)
    viewer.window.add_dock_widget(dock, area="right", **dock_widget_options)
    dock.open_folder(sample_copy())
    return viewer, dock


def process_events_until(condition, timeout: float = 300.0, poll: float = 0.005) -> float:
    """Run the Qt event loop until ``condition()`` holds; returns the seconds waited."""
    start = time.perf_counter()
    while not condition():
        QApplication.processEvents()
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the GUI did not reach the expected state in time")
        time.sleep(poll)
    return time.perf_counter() - start


def mask_shown(dock) -> bool:
    from napari_hybridseg._qt.dock import MASK_LAYER

    return MASK_LAYER in dock.viewer.layers and dock.viewer.layers[MASK_LAYER].editable


def true_mask(key: str) -> np.ndarray:
    """The bundled sample's hand-made-equivalent mask of image ``key``, as instance labels (a full correction)."""
    from skimage.measure import label

    from napari_hybridseg.data.io import read_mask

    return label(read_mask(sample_data_root() / SAMPLE_DOMAIN / "labels" / key) > 0).astype(np.uint16)
