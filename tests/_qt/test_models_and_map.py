"""The model box (rolling back and forward), the disagreement map's colours and scale, and the menu entry the
docs name."""

from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_hybridseg._qt.disagreement_layer import DISAGREEMENT_COLORMAP, DISAGREEMENT_LAYER
from napari_hybridseg._qt.dock import MASK_LAYER
from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.project import ProjectStore
from napari_hybridseg.zoo import zoo_models
from tests._qt.driving import list_text, open_dock, wait_for_prediction

DOCS = Path(__file__).resolve().parents[2] / "docs" / "viewer.md"


@pytest.fixture
def two_versions(image_folder, tiny_checkpoint):
    """The sample folder with two registered versions of the tiny model, v0002 active."""
    session = AnnotationSession(ProjectStore.open(image_folder), "cpu")
    session.import_checkpoint(tiny_checkpoint)
    session.import_checkpoint(tiny_checkpoint)
    return image_folder


def test_rolling_back_and_forward_through_the_model_box(make_napari_viewer, qtbot, two_versions):
    viewer, dock = open_dock(make_napari_viewer, two_versions)
    combo = dock.model.combo
    assert [combo.itemData(i) for i in range(3)] == [None, "v0001", "v0002"]
    assert {combo.itemData(i) for i in range(3, combo.count())} >= {f"zoo:{m.name}" for m in zoo_models()}
    assert combo.currentData() == "v0002"
    wait_for_prediction(qtbot, dock)
    key = dock.key
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Up)  # the user picks the version before
    assert dock.session.active_version == "v0001" and combo.currentData() == "v0001"
    assert dock.status.text() == "Model v0001 is active; updating predictions."
    qtbot.waitUntil(lambda: not dock.session.stale_keys(), timeout=60_000)
    qtbot.waitUntil(lambda: list_text(dock, key).endswith("(predicted by v0001)"), timeout=10_000)
    np.testing.assert_array_equal(viewer.layers[MASK_LAYER].data, dock.session.mask_for(key)[0])

    qtbot.keyClick(combo, Qt.Key.Key_Up)
    assert dock.session.active_version is None and "shipped default is active" in dock.status.text()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # and forward again
    assert dock.session.active_version == "v0002"
    dock.close_project()
    assert ProjectStore.open(two_versions).active_model == "v0002"


def test_a_new_project_starts_from_the_shipped_model_that_knows_its_images_best(make_napari_viewer, qtbot,
                                                                               image_folder):
    viewer, dock = open_dock(make_napari_viewer, image_folder, choose_start_model=True)
    assert "Choosing the shipped model" in dock.model.why.text()
    qtbot.waitUntil(lambda: dock.session.active_version == "v0001", timeout=120_000)
    best = dock.session.rank_start_models()[0].name
    assert f"Start model: <b>{best}</b>, chosen automatically" in dock.model.why.text()
    assert "knows these images best" in dock.model.why.text()
    assert dock.model.combo.currentText().startswith(f"v0001 — {best} (shipped)")
    qtbot.waitUntil(lambda: not dock.session.stale_keys(), timeout=120_000)  # its predictions replace the default's
    dock.close_project()
    reopened, dock = open_dock(make_napari_viewer, image_folder, choose_start_model=True)
    assert dock.session.active_version == "v0001" and f"Started from {best} (shipped)" in dock.model.why.text()
    dock.close_project()


def test_picking_a_shipped_model_in_the_model_box_starts_from_it(make_napari_viewer, qtbot, image_folder):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    combo = dock.model.combo
    index = combo.findData("zoo:lungs")
    assert index > 0 and "lung fields in chest X-rays" in combo.itemText(index)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)  # as a click on the entry does
    assert dock.session.active_version == "v0001"
    assert dock.session.store.model_versions()[0]["note"] == "lungs (shipped), picked by hand"
    assert combo.currentData() == "v0001" and "picked by hand" in dock.model.why.text()
    qtbot.waitUntil(lambda: not dock.session.stale_keys(), timeout=120_000)
    dock.close_project()


def test_the_disagreement_map_has_a_scale_and_leaves_the_mask_visible(make_napari_viewer, qtbot, two_versions):
    viewer, dock = open_dock(make_napari_viewer, two_versions)
    wait_for_prediction(qtbot, dock)
    dock.suggestions.show_map.click()
    assert dock.suggestions.scale.isVisibleTo(dock)
    qtbot.waitUntil(lambda: DISAGREEMENT_LAYER in viewer.layers and viewer.layers[DISAGREEMENT_LAYER].visible,
                    timeout=60_000)
    layer = viewer.layers[DISAGREEMENT_LAYER]
    top = float(np.nanmax(layer.data))
    assert layer.contrast_limits[1] == pytest.approx(top if top > 0 else 1.0)
    assert dock.suggestions.scale.high.text() == f"{layer.contrast_limits[1]:.3f}: disagree most (yellow)"
    mask = viewer.layers[MASK_LAYER]
    assert mask.visible and mask.opacity > 0 and viewer.layers.index(mask) > viewer.layers.index(layer)
    assert viewer.layers.selection.active is mask
    dock.suggestions.show_map.click()
    assert DISAGREEMENT_LAYER not in viewer.layers and not dock.suggestions.scale.isVisibleTo(dock)
    dock.close_project()


@pytest.mark.parametrize("background", [(0.85, 0.55, 0.75), (0.45, 0.25, 0.55), (0.8, 0.6, 0.5), (0.5, 0.5, 0.5),
                                        (0.1, 0.1, 0.1), (0.95, 0.95, 0.95)],
                         ids=["eosin pink", "haematoxylin purple", "skin photo", "grey", "dark grey", "light grey"])
def test_high_disagreement_stands_out_on_stained_tissue_photos_and_grey_images(background):
    """Where the samples agree the image shows through untouched; where they disagree the overlaid colour
    differs clearly from the image (hue, not only brightness, so that grey images show it too)."""
    colours = DISAGREEMENT_COLORMAP.map(np.array([0.0, 0.6, 1.0]))
    assert colours[0, 3] == 0
    for r, g, b, alpha in colours[1:]:
        shown = alpha * np.array([r, g, b]) + (1 - alpha) * np.array(background)
        assert np.linalg.norm(shown - np.array(background)) > 0.3
        assert shown.max() - shown.min() > 0.3  # a colour, never a grey


def test_the_docs_name_the_plugins_menu_entry_napari_shows(make_napari_viewer):
    viewer = make_napari_viewer()
    entry = next(a.text() for a in viewer.window.plugins_menu.actions() if "Label 5 images then refine" in a.text())
    assert f"*Plugins > {entry.replace('&', '')}*" in DOCS.read_text()
