"""Exports as the user makes them: the dock's buttons (in the background, with napari's progress), and
*File > Save Layers* with the plugin's writers; read back with ome-zarr's reader and napari-ome-zarr."""

import threading

import numpy as np
import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QFileDialog

from napari_hybridseg import export as export_module
from napari_hybridseg._qt.dock import IMAGE_LAYER, MASK_LAYER
from napari_hybridseg.data.io import read_mask
from napari_hybridseg.model.split import count_objects
from tests._qt.driving import open_dock, wait_for_prediction


def accept_two(qtbot, dock):
    masks = {}
    for _ in range(2):
        wait_for_prediction(qtbot, dock)
        masks[dock.key] = np.array(dock.viewer.layers[MASK_LAYER].data)
        dock.images.accept_button.click()
    return masks


def napari_ome_zarr_layers(path):
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr._reader")
    return napari_ome_zarr.napari_get_reader(str(path))()


def test_export_runs_in_the_background_with_progress_and_names_pngs_by_stem(make_napari_viewer, qtbot, image_folder,
                                                                           tmp_path, monkeypatch):
    from napari.utils import progress

    viewer, dock = open_dock(make_napari_viewer, image_folder)
    masks = accept_two(qtbot, dock)
    held, release, ran_on_gui_thread = threading.Event(), threading.Event(), []
    real = export_module.EXPORTERS["png"]

    def slow_png(out, items):
        for key in real(out, items):
            ran_on_gui_thread.append(threading.current_thread() is threading.main_thread())
            held.set()
            yield key
            release.wait(30)

    monkeypatch.setitem(export_module.EXPORTERS, "png", slow_png)
    out = tmp_path / "pngs"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *args, **kwargs: str(out)))
    qtbot.mouseClick(dock.exports.png_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(held.is_set, timeout=30_000)
    assert not dock.exports.png_button.isEnabled() and not dock.exports.zarr_button.isEnabled()
    assert any(bar.total == 2 for bar in progress._all_instances), "napari's progress bar shows it"
    ticks = []
    QTimer.singleShot(10, lambda: ticks.append(1))  # the viewer's event loop runs meanwhile
    qtbot.waitUntil(lambda: bool(ticks), timeout=5_000)
    dock.images.next_button.click()  # and the user keeps working
    release.set()
    qtbot.waitUntil(lambda: dock.exports.worker is None, timeout=60_000)
    assert ran_on_gui_thread == [False, False]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{k.removesuffix('.png')}.png" for k in masks]
                                                           + ["objects", "provenance.json"])
    for key, mask in masks.items():
        np.testing.assert_array_equal(read_mask(out / key), mask)
        table = (out / "objects" / f"{key.removesuffix('.png')}.csv").read_text().splitlines()
        assert table[0] == "id,area,centroid_y,centroid_x" and len(table) == 1 + count_objects(mask)
    assert dock.status.text() == f"Exported 2 accepted masks to {out}."
    dock.close_project()


def test_the_ome_zarr_export_opens_whole_in_both_readers(make_napari_viewer, qtbot, image_folder, tmp_path,
                                                         monkeypatch):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    masks = accept_two(qtbot, dock)
    out = tmp_path / "masks.zarr"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(out), "")))
    qtbot.mouseClick(dock.exports.zarr_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.exports.worker is None, timeout=60_000)
    (first, first_mask), (second, second_mask) = masks.items()
    height, width = first_mask.shape

    plate = next(iter(Reader(parse_url(str(out)))()))  # the whole export: one grid of both images
    assert np.asarray(plate.data[0]).shape == (3, height, 2 * width)
    layers = napari_ome_zarr_layers(out)
    labels = [data for data, meta, kind in layers if kind == "labels"]
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    np.testing.assert_array_equal(np.asarray(labels[0][0]), np.hstack([first_mask, second_mask]))

    # a folder that is not an export is never replaced
    other = tmp_path / "notes.zarr"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    dock.export("zarr", other)
    qtbot.waitUntil(lambda: dock.exports.worker is None, timeout=60_000)
    assert "already exists and is not a napari-hybridseg export" in dock.status.text()
    assert (other / "keep.txt").read_text() == "mine"
    dock.close_project()


def save_selected_layers(viewer, monkeypatch, path, writer_name):
    """File > Save Selected Layers…, picking ``path`` and the writer named ``writer_name`` in napari's dialog."""
    def dialog(*args, filter="", **kwargs):
        return str(path), next(f for f in filter.split(";;") if writer_name in f)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    action = next(a for a in viewer.window.file_menu.actions() if a.text().startswith("Save Selected Layer"))
    action.trigger()


def test_file_save_layers_writes_through_the_plugins_writers(make_napari_viewer, qtbot, image_folder, tmp_path,
                                                             monkeypatch):
    viewer, dock = open_dock(make_napari_viewer, image_folder)
    wait_for_prediction(qtbot, dock)
    image, mask = viewer.layers[IMAGE_LAYER], viewer.layers[MASK_LAYER]
    viewer.layers.selection = {image, mask}
    out = tmp_path / "one.zarr"
    save_selected_layers(viewer, monkeypatch, out, "OME-Zarr with labels (hybridseg)")
    nodes = list(Reader(parse_url(str(out)))())
    assert np.asarray(nodes[0].data[0]).shape == (3, *mask.data.shape)
    label = next(n for n in nodes if n.metadata.get("name") == "mask")
    np.testing.assert_array_equal(np.asarray(label.data[0]), mask.data)
    assert [kind for _, _, kind in napari_ome_zarr_layers(out)] == ["image", "labels"]

    viewer.layers.selection = {mask}
    png = tmp_path / "mask.png"
    save_selected_layers(viewer, monkeypatch, png, "PNG label image (hybridseg)")
    np.testing.assert_array_equal(read_mask(png), mask.data)
    dock.close_project()
