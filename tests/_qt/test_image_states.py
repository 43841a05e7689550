"""What the dock tells the user: each image's state and model version in the list, unreadable files found on
opening, messages readable whole, the status of an accepted image, the last round's loss curve on reopening."""

import shutil

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_hybridseg._qt.dock import MASK_LAYER
from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.project import ProjectStore
from tests._qt.driving import brush_stroke, list_text, open_dock, wait_for_prediction


@pytest.fixture
def folder(image_folder, tiny_checkpoint):
    """The sample folder, a file cut short in it, and the tiny model active (v0001)."""
    (image_folder / "truncated.png").write_bytes(next(image_folder.glob("*.png")).read_bytes()[:200])
    AnnotationSession(ProjectStore.open(image_folder), "cpu").import_checkpoint(tiny_checkpoint)
    return image_folder


def test_the_list_shows_each_image_state_and_the_model_its_mask_came_from(make_napari_viewer, qtbot, folder,
                                                                         MouseEvent, tiny_checkpoint):
    viewer, dock = open_dock(make_napari_viewer, folder)
    # found on opening, in the background, before the user ever reaches it
    qtbot.waitUntil(lambda: "unreadable: truncated.png is cut short" in list_text(dock, "truncated.png"),
                    timeout=30_000)
    assert list_text(dock, "truncated.png").startswith("⚠")
    wait_for_prediction(qtbot, dock)
    first, second = dock.session.keys()[:2]
    assert list_text(dock, first) == f"· {first}  (predicted by v0001)"
    assert "(unlabelled)" in list_text(dock, dock.session.keys()[4])

    brush_stroke(viewer.layers[MASK_LAYER], (20, 20), (20, 60), 3, MouseEvent)
    assert list_text(dock, first) == f"✎ {first}  (edited, not accepted (from v0001))"  # at once, not on moving
    qtbot.mouseClick(dock.images.next_button, Qt.MouseButton.LeftButton)
    assert list_text(dock, first) == f"✎ {first}  (edited, not accepted (from v0001))"  # kept as a draft
    wait_for_prediction(qtbot, dock)
    dock.images.accept_button.click()
    assert list_text(dock, second) == f"✓ {second}  (accepted (from v0001))"

    qtbot.waitUntil(lambda: dock.annotator.prefetch_worker is None, timeout=60_000)
    predicted = next(k for k in dock.session.keys() if "predicted by v0001" in list_text(dock, k))
    dock.model.load_checkpoint(tiny_checkpoint)  # v0002: the other predictions are now of an older model
    assert list_text(dock, predicted).endswith("(predicted by v0001 — an older model)")
    qtbot.waitUntil(lambda: not dock.session.stale_keys(), timeout=60_000)
    qtbot.waitUntil(lambda: list_text(dock, predicted).endswith("(predicted by v0002)"), timeout=10_000)
    assert list_text(dock, first).startswith("✎") and list_text(dock, second).endswith("(accepted (from v0001))")
    dock.close_project()


def test_an_accepted_image_says_so_in_the_status_lines(make_napari_viewer, qtbot, folder):
    viewer, dock = open_dock(make_napari_viewer, folder)
    wait_for_prediction(qtbot, dock)
    first = dock.key
    dock.images.accept_button.click()
    qtbot.mouseClick(dock.images.previous_button, Qt.MouseButton.LeftButton)
    assert dock.key == first
    assert dock.status.text() == f"{first}: accepted (from v0001); edit it and accept again to replace it."
    dock.close_project()


def test_long_messages_are_readable_whole(make_napari_viewer, qtbot, folder):
    from napari.utils.notifications import notification_manager

    viewer, dock = open_dock(make_napari_viewer, folder)
    viewer.window._qt_window.show()
    wait_for_prediction(qtbot, dock)
    dock.show_image("truncated.png")
    message = dock.status.text()
    assert message.startswith("Cannot show truncated.png: truncated.png could not be read as an image (")
    assert notification_manager.records[-1].message == message  # the notification's details hold it all too
    long = "Could not open /a/very/long/path/" + "nested-folder/" * 30 + f"images: {message}"
    dock.say(long, "error")
    assert dock.status.text() == long and dock.status.toolTip() == long
    assert dock.status.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff  # wrapped, never cut
    qtbot.waitUntil(lambda: dock.status.verticalScrollBar().maximum() > 0, timeout=10_000)  # scrolls to the end
    dock.close_project()


def test_reopening_a_project_shows_the_last_rounds_loss_curve(make_napari_viewer, qtbot, folder):
    store = ProjectStore.open(folder)
    store.append_training_log("failed-0", [{"step": 1, "loss": 9.0}, {"status": "diverged", "message": "…"}])
    store.append_training_log("v0001", [{"step": s, "loss": 1.0 / s} for s in range(1, 11)])
    viewer, dock = open_dock(make_napari_viewer, folder)
    plot = dock.refinement.loss_plot
    assert plot.steps == list(range(1, 11)) and plot.losses == [1.0 / s for s in range(1, 11)]
    assert "last refinement: v0001" in dock.refinement.progress.format()
    dock.close_project()


def test_checking_a_folder_reads_headers_not_pixels(tmp_path, monkeypatch):
    """A big folder is not decoded twice: the check on opening reads each file's header and end only."""
    from napari_hybridseg.project import store as store_module
    from tests._qt.driving import sample_folder

    folder = sample_folder(tmp_path / "images", 4)
    shutil.copy(next(folder.glob("*.png")), folder / "copy.png")
    (folder / "cut.png").write_bytes((folder / "copy.png").read_bytes()[:500])
    decoded = []
    monkeypatch.setattr(store_module, "_read_image_file", lambda path: decoded.append(path) or np.zeros((2, 2)))
    session = AnnotationSession(ProjectStore.open(folder), "cpu")
    found = dict(session.check_files())
    assert decoded == []
    assert [k for k, reason in found.items() if reason] == ["cut.png"]
    assert session.image_status("cut.png").state == "unreadable"
