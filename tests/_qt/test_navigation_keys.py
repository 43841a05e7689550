"""Moving between images as a user does: keys wherever the focus is, the label tool kept, where accepting
goes next and why, unreadable images passed over and named."""

import shutil

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QFileDialog

from napari_hybridseg._qt.dock import MASK_LAYER, HybridSegDock
from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.project import ProjectStore
from tests._qt.driving import brush_stroke, list_text, open_dock, sample_folder, wait_for_prediction


@pytest.fixture
def tiny_folder(image_folder, tiny_checkpoint):
    """The sample folder with the tiny model active (v0001): fast predictions and ranking."""
    AnnotationSession(ProjectStore.open(image_folder), "cpu").import_checkpoint(tiny_checkpoint)
    return image_folder


def activate(qtbot, viewer) -> None:
    window = viewer.window._qt_window
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=10_000)


def click_row(qtbot, view, key: str) -> None:
    item = next(view.item(i) for i in range(view.count()) if view.item(i).data(Qt.ItemDataRole.UserRole) == key)
    view.scrollToItem(item)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualItemRect(item).center())


def test_page_keys_and_shift_a_work_right_after_the_open_folder_dialog(make_napari_viewer, qtbot, tiny_folder,
                                                                       monkeypatch):
    viewer = make_napari_viewer()
    dock = HybridSegDock(viewer, device="cpu", choose_start_model=False)
    viewer.window.add_dock_widget(dock)
    activate(qtbot, viewer)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args, **kwargs: str(tiny_folder)))
    qtbot.mouseClick(dock.images.open_button, Qt.MouseButton.LeftButton)
    wait_for_prediction(qtbot, dock)
    keys = dock.session.keys()
    assert dock.key == keys[0]
    canvas = viewer.window._qt_viewer.canvas.native
    focus = QApplication.focusWidget() or dock.images.open_button
    assert focus is not canvas, "the focus is where the dialog left it, not on the canvas"
    qtbot.keyClick(focus, Qt.Key.Key_PageDown)
    assert dock.key == keys[1]

    dock.images.list.setFocus()  # the list would scroll by a page: the dock's keys come first
    qtbot.keyClick(dock.images.list, Qt.Key.Key_PageDown)
    assert dock.key == keys[2]
    qtbot.keyClick(dock.images.list, Qt.Key.Key_PageUp)
    assert dock.key == keys[1]

    canvas.setFocus()  # on the canvas: one move per press, not two
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert dock.key == keys[2]

    wait_for_prediction(qtbot, dock)
    qtbot.keyClick(dock.images.list, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    assert dock.session.store.record(keys[2]).state == "accepted"
    dock.close_project()


def test_the_label_tool_brush_size_and_label_stay_picked_across_images(make_napari_viewer, qtbot, tiny_folder,
                                                                       MouseEvent):
    viewer, dock = open_dock(make_napari_viewer, tiny_folder)
    wait_for_prediction(qtbot, dock)
    layer = viewer.layers[MASK_LAYER]
    brush_stroke(layer, (20, 20), (20, 60), 4, MouseEvent, brush_size=13)
    qtbot.mouseClick(dock.images.accept_button, Qt.MouseButton.LeftButton)
    wait_for_prediction(qtbot, dock)
    assert (layer.mode, layer.brush_size, layer.selected_label) == ("paint", 13, 4)

    # an image far down the list is predicted only once opened: the layer is read-only meanwhile (napari puts it
    # in pan/zoom), and the tool is back when its mask arrives
    last = dock.session.keys()[-1]
    assert dock.session.is_stale(last)
    click_row(qtbot, dock.images.list, last)
    assert dock.key == last
    wait_for_prediction(qtbot, dock)
    assert (layer.mode, layer.brush_size, layer.selected_label) == ("paint", 13, 4)

    layer.mode, layer.brush_size = "erase", 5  # the user's next choice is the one kept
    qtbot.mouseClick(dock.images.previous_button, Qt.MouseButton.LeftButton)
    wait_for_prediction(qtbot, dock)
    assert (layer.mode, layer.brush_size) == ("erase", 5)
    dock.close_project()


def test_accept_goes_where_the_after_accept_option_says_and_says_why(make_napari_viewer, qtbot, tiny_folder):
    viewer, dock = open_dock(make_napari_viewer, tiny_folder)
    keys = dock.session.keys()
    assert dock.images.after_accept.currentData() == "next"
    wait_for_prediction(qtbot, dock)
    dock.images.accept_button.click()
    assert dock.key == keys[1]
    assert f"Saved the mask of {keys[0]}. Now {keys[1]}: the next unaccepted image in the list." in dock.status.text()

    dock.show_image(keys[-1])  # the last one: accepting wraps around to the first image not accepted
    wait_for_prediction(qtbot, dock)
    dock.images.accept_button.click()
    assert dock.key == keys[1]

    combo = dock.images.after_accept
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # as the user picks it
    assert combo.currentData() == "informative"
    assert ProjectStore.open(tiny_folder).settings["after_accept"] == "informative"
    qtbot.waitUntil(lambda: "Unaccepted images ranked with" in dock.suggestions.status.text(), timeout=60_000)
    wait_for_prediction(qtbot, dock)
    shown = dock.key
    dock.images.accept_button.click()
    expected = dock.session.ranking()[0][0]  # the plan made again without the accepted image
    assert dock.key == expected != shown
    assert f"Now {expected}: the suggested image (" in dock.status.text()
    dock.close_project()


@pytest.fixture
def folder_with_unreadables(tmp_path):
    """a.png, c.png, e.png readable; b_stack.tif (a 3-D stack) and d_cut.png (cut short) not."""
    import numpy as np
    import tifffile

    sample = sample_folder(tmp_path / "sample", 3)
    folder = tmp_path / "images"
    folder.mkdir()
    for name, path in zip(("a.png", "c.png", "e.png"), sorted(sample.iterdir())):
        shutil.copy(path, folder / name)
    tifffile.imwrite(folder / "b_stack.tif", np.zeros((3, 32, 32), np.uint8))
    (folder / "d_cut.png").write_bytes((folder / "a.png").read_bytes()[:300])
    return folder


def test_previous_and_next_pass_over_unreadable_images_and_name_them(make_napari_viewer, qtbot,
                                                                     folder_with_unreadables):
    viewer, dock = open_dock(make_napari_viewer, folder_with_unreadables)
    qtbot.waitUntil(lambda: "unreadable" in list_text(dock, "d_cut.png"), timeout=30_000)
    dock.show_image("e.png")
    wait_for_prediction(qtbot, dock)
    previous = dock.images.previous_button
    qtbot.mouseClick(previous, Qt.MouseButton.LeftButton)
    assert dock.key == "c.png"
    assert dock.status.text().startswith("Passed over d_cut.png: d_cut.png is cut short")
    qtbot.mouseClick(previous, Qt.MouseButton.LeftButton)
    assert dock.key == "a.png" and dock.status.text().startswith("Passed over b_stack.tif: b_stack.tif has shape")
    qtbot.mouseClick(previous, Qt.MouseButton.LeftButton)
    assert dock.key == "a.png" and "a.png is the first readable image" in dock.status.text()

    # a file spoilt after the check fails when reached: the message names it, and the next move passes over it
    (folder_with_unreadables / "c.png").write_bytes(b"no longer an image")
    dock.next_image()
    assert dock.key == "a.png" and dock.status.text().startswith("Cannot show c.png: c.png could not be read")
    assert "unreadable" in list_text(dock, "c.png")
    dock.next_image()
    assert dock.key == "e.png"
    assert "Passed over b_stack.tif" in dock.status.text() and "Passed over c.png" in dock.status.text()
    dock.close_project()
