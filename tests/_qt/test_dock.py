"""The whole "label 5 images then refine" workflow, driven as a user would."""

from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from qtpy.QtCore import Qt

from napari_hybridseg._qt.dock import IMAGE_LAYER, MASK_LAYER, HybridSegDock
from napari_hybridseg._qt.suggestions import DISAGREEMENT_LAYER
from napari_hybridseg.annotation import EDITED, AnnotationSession
from napari_hybridseg.data.io import read_mask
from napari_hybridseg.project import ProjectStore
from tests._qt.driving import FAST_REFINE, brush_stroke, export_and_wait, open_dock, wait_for_prediction


def test_label_five_images_then_refine_export_and_resume(make_napari_viewer, qtbot, image_folder, tmp_path,
                                                         MouseEvent):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    store = dock.session.store
    store.update_settings(**FAST_REFINE)
    wait_for_prediction(qtbot, dock)
    first = dock.key
    assert viewer.layers[IMAGE_LAYER].rgb
    assert "prediction of shipped default" in dock.status.text()

    # the user paints a stroke of label 9 into the prediction, then accepts with the button
    mask_layer = viewer.layers[MASK_LAYER]
    brush_stroke(mask_layer, (20, 20), (20, 60), 9, MouseEvent)
    assert dock.annotator.edited
    painted = np.array(mask_layer.data)
    assert (painted[20, 20:60] == 9).all()
    dock.images.accept_button.click()
    assert np.array_equal(store.accepted_mask(first), painted)  # saved at once
    assert store.record(first).state == "accepted"

    # four more, each the image the dock moves on to
    for _ in range(4):
        wait_for_prediction(qtbot, dock)
        assert store.record(dock.key).state != "accepted"
        dock.accept()
    assert len(store.accepted_keys()) == 5

    # the fifth acceptance started a background refinement; the viewer stays usable meanwhile
    assert dock.refinement.worker is not None
    dock.next_image()
    qtbot.waitUntil(lambda: store.active_model is not None, timeout=180_000)
    version = store.active_model
    # the version is registered in the worker; the dock shows it once the worker reports back
    qtbot.waitUntil(lambda: dock.model.combo.currentData() == version, timeout=30_000)
    assert dock.refinement.loss_plot.steps, "the loss curve was drawn"
    trained_on = set(dock.session.segmenter().metadata["finetuning"][-1]["labelled_ids"])
    assert trained_on == set(store.accepted_keys())

    # predictions of the images not accepted are refreshed by the new version; accepted masks untouched
    qtbot.waitUntil(lambda: not dock.session.stale_keys(), timeout=60_000)
    for key in store.keys():
        record = store.record(key)
        if record.state != "accepted":
            assert record.prediction_model == version
    assert np.array_equal(store.accepted_mask(first), painted)

    # export (in the background), and read both back
    zarr_out = export_and_wait(qtbot, dock, "zarr", tmp_path / "export.zarr")
    png_out = export_and_wait(qtbot, dock, "png", tmp_path / "png")
    assert np.array_equal(read_mask(png_out / f"{Path(first).stem}.png"), painted)
    root = zarr.open_group(str(zarr_out), mode="r")
    images = root.attrs["napari_hybridseg"]["images"]
    assert set(images) == set(store.accepted_keys())
    field = zarr_out / images[first]["well"] / "0"
    nodes = list(Reader(parse_url(str(field)))())
    label_node = [n for n in nodes if n.metadata.get("name") == "mask"][0]
    assert np.array_equal(np.asarray(label_node.data[0]), painted)
    assert np.asarray(nodes[0].data[0]).shape == (3, *painted.shape)
    position = dock.key
    dock.close_project()
    viewer.close()

    # restart: the same folder resumes where the user was
    viewer2, dock2 = open_dock(make_napari_viewer, image_folder)
    store2 = dock2.session.store
    assert store2.active_model == version
    assert dock2.key == position
    assert sorted(store2.accepted_keys()) == sorted(store.accepted_keys())
    assert np.array_equal(store2.accepted_mask(first), painted)
    dock2.show_image(first)
    assert np.array_equal(viewer2.layers[MASK_LAYER].data, painted)
    dock2.close_project()


def test_unaccepted_edit_survives_navigation(make_napari_viewer, qtbot, image_folder, MouseEvent):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    first = dock.key
    brush_stroke(viewer.layers[MASK_LAYER], (10, 10), (10, 40), 5, MouseEvent)
    edited = np.array(viewer.layers[MASK_LAYER].data)
    dock.next_image()
    wait_for_prediction(qtbot, dock)
    dock.previous_image()
    assert dock.key == first
    assert np.array_equal(viewer.layers[MASK_LAYER].data, edited)
    assert "unaccepted edit" in dock.status.text()
    dock.close_project()


def test_opening_a_folder_without_images_says_so(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    dock = HybridSegDock(viewer, device="cpu", choose_start_model=False)
    (tmp_path / "notes.txt").write_text("no images here")
    assert not dock.open_folder(tmp_path)
    assert "no PNG, TIFF or JPEG images" in dock.status.text()
    assert dock.session is None


def test_a_pickle_checkpoint_is_refused_in_the_viewer(make_napari_viewer, qtbot, image_folder, tmp_path):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(b"\x80\x04K\x01.")
    assert not dock.load_checkpoint(evil)
    assert "refuses" in dock.status.text()
    assert dock.session.store.active_model is None
    dock.close_project()


def ranking_shown(dock, n_images):
    """All unaccepted images are scored and the panel lists the top of that ranking."""
    ranking = dock.session.ranking()
    return len(ranking) == n_images and dock.suggestions.keys() == [key for key, _ in ranking[:5]]


def map_shown(dock, key):
    layers = dock.viewer.layers
    if DISAGREEMENT_LAYER not in layers or not layers[DISAGREEMENT_LAYER].visible:
        return False
    return np.array_equal(layers[DISAGREEMENT_LAYER].data, dock.session.disagreement_map(key))


def test_suggestions_follow_the_ranking_and_say_why(make_napari_viewer, qtbot, image_folder, tiny_checkpoint):
    AnnotationSession(ProjectStore.open(image_folder), "cpu").import_checkpoint(tiny_checkpoint)  # fast model
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    assert dock.session.active_version == "v0001"
    qtbot.waitUntil(lambda: ranking_shown(dock, 7), timeout=120_000)
    # the last score is shown (its progress signal) a moment before the worker's finished signal sets this line
    qtbot.waitUntil(lambda: "ranked with v0001: cover the folder, as the model refines after every 5 images"
                    in dock.suggestions.status.text(), timeout=10_000)  # automatic, in the default rounds of 5
    assert dock.suggestions.keys() == [pick.key for pick in dock.session.suggestions()[:5]]

    # refining after every image, the automatic rule suggests where the samples disagree: the list follows at once
    dock.refinement.every.setValue(1)
    ranking = dock.session.ranking()
    assert [score for _, score in ranking] == sorted((score for _, score in ranking), reverse=True)
    assert dock.suggestions.keys() == [key for key, _ in ranking[:5]]

    # by coverage, as the user picks it: the same scores, planned at once, each row saying why
    rule = dock.suggestions.rule
    rule.setCurrentIndex(rule.findData("adaptive"))
    rule.activated.emit(rule.currentIndex())
    assert ProjectStore.open(image_folder).settings["suggest_by"] == "adaptive"
    picks = dock.session.suggestions()
    assert dock.suggestions.list.item(0).text() == f"{picks[0].key} — {picks[0].reasons[0]}"
    assert picks[0].describe() in dock.suggestions.list.item(0).toolTip()
    rule.setCurrentIndex(rule.findData("disagreement"))
    rule.activated.emit(rule.currentIndex())
    assert [score for _, score in ranking] == sorted((score for _, score in ranking), reverse=True)
    assert dock.suggestions.keys() == [key for key, _ in ranking[:5]]

    dock.images.suggested_button.click()
    assert dock.key == ranking[0][0]
    assert dock.status.text().startswith("Suggested: ")

    # the disagreement map of the image shown, under the mask, which stays the layer being edited
    dock.suggestions.show_map.setChecked(True)
    qtbot.waitUntil(lambda: map_shown(dock, dock.key), timeout=30_000)
    layer = viewer.layers[DISAGREEMENT_LAYER]
    assert layer.data.shape == viewer.layers[IMAGE_LAYER].data.shape[:2]
    assert layer.colormap.name == "hybridseg disagreement" and layer.blending == "translucent"
    assert viewer.layers[MASK_LAYER].visible, "the mask stays visible over the map"
    assert viewer.layers.index(layer) < viewer.layers.index(MASK_LAYER)
    assert viewer.layers.selection.active is viewer.layers[MASK_LAYER]

    # clicking the runner-up in the list goes there, and the map follows
    second = ranking[1][0]
    view = dock.suggestions.list
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualItemRect(view.item(1)).center())
    assert dock.key == second
    qtbot.waitUntil(lambda: map_shown(dock, second), timeout=30_000)

    # with "after accept: most informative", accepting it drops it from the list and moves on to the top image
    combo = dock.images.after_accept
    combo.setCurrentIndex(combo.findData("informative"))
    combo.activated.emit(combo.currentIndex())
    wait_for_prediction(qtbot, dock)
    dock.accept()
    assert second not in dock.suggestions.keys()
    assert dock.key == ranking[0][0]

    # another model: every unaccepted image is scored again, by that model
    dock.load_checkpoint(tiny_checkpoint)
    assert dock.session.active_version == "v0002"
    assert dock.suggestions.keys() == []  # no score of the old model is shown
    qtbot.waitUntil(lambda: ranking_shown(dock, 6), timeout=120_000)
    qtbot.waitUntil(lambda: "ranked with v0002: where the samples disagree" in dock.suggestions.status.text(),
                    timeout=10_000)

    dock.suggestions.show_map.setChecked(False)
    assert DISAGREEMENT_LAYER not in viewer.layers
    dock.close_project()


def test_the_next_image_is_predicted_ahead_so_moving_there_shows_its_mask_at_once(make_napari_viewer, qtbot,
                                                                                  image_folder):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    keys = dock.session.keys()
    assert dock.key == keys[0]
    qtbot.waitUntil(lambda: not dock.session.is_stale(keys[1]), timeout=60_000)  # predicted without being opened
    dock.next_image()
    assert dock.key == keys[1] and viewer.layers[MASK_LAYER].editable  # no placeholder, no waiting
    assert "prediction of shipped default" in dock.status.text()
    dock.close_project()


def test_refine_is_prepared_off_the_gui_thread_and_cancelling_meanwhile_keeps_the_model(
        make_napari_viewer, qtbot, image_folder, monkeypatch):
    """Making the job reads every accepted image and loads the base model (up to 100 ms): a worker does
    it. A cancel that comes before the job reaches the viewer still stops it."""
    import threading

    viewer, dock = open_dock(make_napari_viewer, image_folder)
    store = dock.session.store
    store.update_settings(refine_every=99, **FAST_REFINE)
    wait_for_prediction(qtbot, dock)
    dock.accept()
    made_on, release = [], threading.Event()
    make_job = AnnotationSession.make_refine_job

    def slow_make_job(session, *args, **kwargs):
        made_on.append(threading.current_thread() is threading.main_thread())
        release.wait(30)
        return make_job(session, *args, **kwargs)

    monkeypatch.setattr(AnnotationSession, "make_refine_job", slow_make_job)
    dock.start_refine()
    qtbot.waitUntil(lambda: bool(made_on), timeout=10_000)
    assert made_on == [False]
    assert dock.refinement.cancel_button.isEnabled()
    dock.cancel_refine()  # the job has not reached the viewer yet
    release.set()
    qtbot.waitUntil(lambda: dock.refinement.worker is None, timeout=60_000)
    assert store.active_model is None, "a cancelled refinement activates nothing"
    assert dock.refinement.refine_button.isEnabled() and not dock.refinement.cancel_button.isEnabled()
    dock.close_project()


def test_moves_and_strokes_during_a_refinement_ask_the_training_to_give_way(make_napari_viewer, qtbot, image_folder,
                                                                            MouseEvent, monkeypatch):
    from napari_hybridseg.learn.refine import RefineJob

    viewer, dock = open_dock(make_napari_viewer, image_folder)
    store = dock.session.store
    store.update_settings(refine_every=99, **{**FAST_REFINE, "refine_steps": 100_000})
    wait_for_prediction(qtbot, dock)
    asked = []
    monkeypatch.setattr(RefineJob, "user_active", lambda job: asked.append(job))
    brush_stroke(viewer.layers[MASK_LAYER], (20, 20), (20, 60), 9, MouseEvent)
    assert asked == [], "no refinement runs: nothing to ask"
    dock.accept()
    dock.start_refine()
    qtbot.waitUntil(lambda: dock.refinement.job is not None, timeout=60_000)
    wait_for_prediction(qtbot, dock)
    asked.clear()
    dock.next_image()
    assert asked == [dock.refinement.job]
    wait_for_prediction(qtbot, dock)
    brush_stroke(viewer.layers[MASK_LAYER], (30, 20), (30, 60), 9, MouseEvent)
    assert len(asked) >= 2 and all(job is dock.refinement.job for job in asked)
    dock.cancel_refine()
    qtbot.waitUntil(lambda: dock.refinement.worker is None, timeout=120_000)
    dock.close_project()


def test_refine_with_nothing_accepted_says_what_to_do(make_napari_viewer, qtbot, image_folder):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    dock.start_refine()
    assert dock.refinement.worker is None
    assert "Accept at least one mask" in dock.status.text()
    dock.close_project()


def test_moving_on_copies_into_the_same_layers_and_undo_stays_with_its_image(make_napari_viewer, qtbot, image_folder,
                                                                            MouseEvent):
    """Assigning layer.data makes napari rebuild the labels shader on every move; the pixels are copied in."""
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    image_layer, mask_layer = viewer.layers[IMAGE_LAYER], viewer.layers[MASK_LAYER]
    image_array, mask_array = image_layer.data, mask_layer.data
    brush_stroke(mask_layer, (20, 20), (20, 60), 7, MouseEvent)
    qtbot.waitUntil(lambda: dock.annotator.prefetch_worker is None, timeout=60_000)
    assert not dock.session.is_stale(dock.session.keys()[1]), "predicted ahead: shown at once, layer stays editable"
    dock.next_image()
    assert viewer.layers[IMAGE_LAYER] is image_layer and viewer.layers[MASK_LAYER] is mask_layer
    assert image_layer.data is image_array and mask_layer.data is mask_array
    np.testing.assert_array_equal(image_layer.data, dock.session.store.read_image(dock.key))
    shown = np.array(mask_layer.data)
    np.testing.assert_array_equal(shown, dock.session.mask_for(dock.key)[0])
    mask_layer.undo()  # the stroke belonged to the previous image: nothing to undo here
    np.testing.assert_array_equal(mask_layer.data, shown)
    dock.previous_image()
    assert (mask_layer.data[20, 22:58] == 7).all(), "the previous image keeps its stroke (as a draft)"
    dock.close_project()


def saved_draft(folder, key):
    """The unaccepted edit of ``key`` as a new process would find it on disk, or None."""
    store = ProjectStore.open(folder)
    stored = store.prediction(key)
    return stored[0] if stored is not None and stored[1] == EDITED else None


def test_closing_the_viewer_mid_work_keeps_the_edit_and_drops_late_results(make_napari_viewer, qtbot, image_folder,
                                                                           MouseEvent, monkeypatch):
    """Viewer.close() removes the layers, then tears down the Qt side: a prediction that finishes after that
    must not reach the closed viewer, and the edit the user had not accepted yet is kept."""
    import gc
    import threading

    from napari_hybridseg._qt import annotator as annotator_module

    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    qtbot.waitUntil(lambda: dock.annotator.prefetch_worker is None, timeout=60_000)
    first = dock.key
    brush_stroke(viewer.layers[MASK_LAYER], (30, 30), (30, 70), 4, MouseEvent)
    edited = np.array(viewer.layers[MASK_LAYER].data)

    started, release = threading.Event(), threading.Event()
    predict = annotator_module.predict_mask

    def slow_predict(session, key):
        started.set()
        release.wait(30)
        return predict(session, key)

    monkeypatch.setattr(annotator_module, "predict_mask", slow_predict)
    dock.annotator.predict_in_background(first)  # as after a refinement, when the image shown is predicted again
    assert started.wait(10)
    threading.Timer(0.5, release.set).start()  # finishes while napari is closing
    viewer.close()
    qtbot.wait(1500)  # any late result is delivered now; pytest-qt fails the test on an exception in a slot
    assert dock.session is None
    assert gc.isenabled(), "Python collects garbage by itself again (the dock collected it on the GUI thread)"
    assert MASK_LAYER not in viewer.layers and IMAGE_LAYER not in viewer.layers, "nothing reached the closed viewer"

    assert np.array_equal(saved_draft(image_folder, first), edited), "the unaccepted edit is kept"


def test_an_unaccepted_edit_is_kept_shortly_after_the_stroke(make_napari_viewer, qtbot, image_folder, MouseEvent):
    """Kept without moving on, so that a crash or a power cut a few seconds later loses nothing."""
    from napari_hybridseg._qt.annotator import DRAFT_SAVE_DELAY_MS

    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    brush_stroke(viewer.layers[MASK_LAYER], (12, 12), (12, 50), 6, MouseEvent)
    edited = np.array(viewer.layers[MASK_LAYER].data)
    qtbot.waitUntil(lambda: saved_draft(image_folder, dock.key) is not None, timeout=DRAFT_SAVE_DELAY_MS + 10_000)
    assert np.array_equal(saved_draft(image_folder, dock.key), edited)
    dock.close_project()


def test_routine_confirmations_stay_in_the_status_line_and_milestones_notify(make_napari_viewer, qtbot, image_folder):
    from napari.utils.notifications import notification_manager

    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    before = len(notification_manager.records)
    first = dock.key
    dock.accept()
    wait_for_prediction(qtbot, dock)  # the next image's status lines still open with the confirmation
    assert dock.key != first and dock.status.text().startswith(f"Saved the mask of {first}. Now {dock.key}: ")
    assert len(notification_manager.records) == before, "no notification (and its animations) on every accept"
    dock.next_image()
    assert "Saved the mask" not in dock.status.text()

    dock.say("A milestone.")
    dock.say("Something went wrong.", "warning", toast=False)  # a warning or error always notifies
    assert [r.message for r in notification_manager.records[before:]] == ["A milestone.", "Something went wrong."]
    dock.close_project()


def test_a_short_window_scrolls_the_dock_instead_of_clipping_it(make_napari_viewer, qtbot, image_folder):
    """In a window too short for every control the dock scrolls; no control is squeezed under its
    minimum size or drawn past the bottom of its box (the loss curve's x axis was cut off)."""
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    viewer.window._qt_window.resize(1200, 600)
    viewer.window._qt_window.show()
    qtbot.waitUntil(lambda: dock.isVisible() and dock.height() < 600, timeout=10_000)
    refine_box = dock.refinement.loss_plot.parentWidget()
    qtbot.waitUntil(lambda: refine_box.height() >= refine_box.minimumSizeHint().height(), timeout=10_000)
    plot_bottom = dock.refinement.loss_plot.geometry().bottom()
    assert plot_bottom <= refine_box.contentsRect().bottom()
    assert dock.scroll_area.verticalScrollBar().maximum() > 0
    dock.scroll_area.ensureWidgetVisible(dock.status)
    qtbot.waitUntil(lambda: not dock.status.visibleRegion().isEmpty(), timeout=10_000)


def test_moves_write_the_position_once_the_user_stays_and_on_close(make_napari_viewer, qtbot, image_folder):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    keys, store = dock.session.keys(), dock.session.store
    dock.next_image()
    dock.next_image()
    assert dock.key == keys[2] and store.position != keys[2]  # two quick moves: no store write yet
    qtbot.waitUntil(lambda: store.position == keys[2], timeout=10_000)
    dock.next_image()
    dock.close_project()  # at once: closing writes it
    assert ProjectStore.open(image_folder).position == keys[3]


def test_the_ranking_list_changes_only_the_rows_that_differ(qtbot):
    from napari_hybridseg._qt.suggestions import SuggestionPanel
    from napari_hybridseg.learn.selection import Pick

    def picks(*keys):
        return [Pick(key, 1.0 / (i + 1), (f"reason {key}", "another")) for i, key in enumerate(keys)]

    panel = SuggestionPanel(top=3)
    qtbot.addWidget(panel)
    panel.set_suggestions(picks("a", "b", "c", "d"))
    first_row = panel.list.item(0)
    assert panel.keys() == ["a", "b", "c"] and first_row.text() == "a — reason a"
    assert first_row.toolTip() == "a: reason a; another"
    panel.set_suggestions(picks("a", "d"))
    assert panel.keys() == ["a", "d"] and panel.list.item(0) is first_row
    assert panel.list.item(1).text() == "d — reason d"
    panel.set_suggestions([])
    assert panel.keys() == []


def test_long_model_names_and_rules_do_not_widen_the_dock(make_napari_viewer, qtbot, image_folder):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    longest = max(len(dock.model.combo.itemText(i)) for i in range(dock.model.combo.count()))
    assert longest > 40  # the shipped models with what each is for
    assert dock.minimumSizeHint().width() < 500  # napari's canvas keeps its room beside the dock
    dock.close_project()
