"""A fault in a background worker reaches the user as the dock's message, never as an unhandled exception in
Qt's event loop (pytest-qt fails a test on one)."""

from napari_hybridseg.data.io import ImageReadError
from tests._qt.driving import open_dock


def test_a_prediction_that_fails_in_its_worker_is_a_message_only(make_napari_viewer, qtbot, image_folder, monkeypatch):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    key = dock.session.keys()[1]

    def unreadable(k, *args, **kwargs):
        raise ImageReadError(f"{k} could not be read as an image (cut short)")

    monkeypatch.setattr(dock.session, "mask_for", unreadable)
    dock.show_image(key)
    qtbot.waitUntil(lambda: f"Cannot show {key}: prediction failed" in dock.status.text(), timeout=30_000)
    dock.close_project()


def test_a_start_model_choice_that_fails_leaves_the_default_and_says_why(make_napari_viewer, qtbot, image_folder,
                                                                        monkeypatch):
    from napari_hybridseg.annotation import AnnotationSession

    def nothing_readable(self, on_progress=None):
        raise ValueError("none of the images could be read to choose a start model")

    monkeypatch.setattr(AnnotationSession, "rank_start_models", nothing_readable)
    viewer, dock = open_dock(make_napari_viewer, image_folder, choose_start_model=True)
    qtbot.waitUntil(lambda: "shipped default stays" in dock.model.why.text(), timeout=30_000)
    assert dock.session.active_version is None and "none of the images could be read" in dock.model.why.text()
    dock.close_project()
