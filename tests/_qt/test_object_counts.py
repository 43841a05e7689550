"""The images panel counts the objects of the mask shown and of the accepted masks."""

import numpy as np
import pytest

from napari_hybridseg._qt.dock import MASK_LAYER
from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.model.split import count_objects
from napari_hybridseg.project import ProjectStore
from tests._qt.driving import brush_stroke, open_dock, wait_for_prediction


@pytest.fixture
def folder(image_folder, tiny_checkpoint):
    AnnotationSession(ProjectStore.open(image_folder), "cpu").import_checkpoint(tiny_checkpoint)
    return image_folder


def counts_text(dock) -> str:
    return dock.images.count_label.text()


def test_the_count_follows_the_mask_shown_its_edits_and_the_accepted_set(make_napari_viewer, qtbot, folder,
                                                                         MouseEvent):
    viewer, dock = open_dock(make_napari_viewer, folder)
    wait_for_prediction(qtbot, dock)
    layer = viewer.layers[MASK_LAYER]
    shown = count_objects(layer.data)
    qtbot.waitUntil(lambda: counts_text(dock) == f"Objects: {shown} in this image · 0 in 0 accepted images",
                    timeout=10_000)

    new_id = int(layer.data.max()) + 1
    layer.data = np.zeros_like(layer.data)  # erase everything, then paint one object of a new id
    brush_stroke(layer, (10, 10), (10, 30), new_id, MouseEvent)
    dock.annotator.keep_draft()  # as 1.5 s after the last stroke
    assert counts_text(dock).startswith("Objects: 1 in this image")

    first = dock.key
    dock.images.accept_button.click()
    qtbot.waitUntil(lambda: dock.key != first, timeout=10_000)
    wait_for_prediction(qtbot, dock)
    here = count_objects(viewer.layers[MASK_LAYER].data)
    qtbot.waitUntil(lambda: counts_text(dock) == f"Objects: {here} in this image · 1 in 1 accepted image",
                    timeout=10_000)
    dock.close_project()


def test_reopening_a_project_counts_its_accepted_masks_in_the_background(make_napari_viewer, qtbot, folder):
    session = AnnotationSession(ProjectStore.open(folder), "cpu")
    expected = 0
    for n, key in enumerate(session.keys()[1:4], start=1):  # not the first image, which opens first
        mask = np.zeros(session.read_image(key).shape[:2], np.uint16)
        for i in range(n):
            mask[4 + 10 * i : 8 + 10 * i, 4:8] = i + 1
        session.accept(key, mask)
        expected += n
    viewer, dock = open_dock(make_napari_viewer, folder)
    qtbot.waitUntil(lambda: counts_text(dock).endswith(f"· {expected} in 3 accepted images"), timeout=30_000)
    dock.close_project()
