"""A folder full of awkward files: the viewer shows what it can, says what it cannot, and never crashes."""

import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_hybridseg._qt.dock import IMAGE_LAYER, MASK_LAYER, HybridSegDock
from napari_hybridseg.resources import SAMPLE_DOMAIN, sample_data_root

READABLE = ["constant.png", "float_nan_inf.tif", "good.png", "grey16.tif", "one_pixel.png", "rgba.png"]
UNREADABLE = {"stack.tif": "slices", "text_renamed.png": "could not be read", "truncated.png": "could not be read"}


@pytest.fixture
def awkward_folder(tmp_path):
    folder = tmp_path / "awkward"
    folder.mkdir()
    good = sorted((sample_data_root() / SAMPLE_DOMAIN / "images").glob("*.png"))[0]
    shutil.copy(good, folder / "good.png")
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "grey16.tif", rng.integers(0, 65535, (64, 80), dtype=np.uint16))
    floats = rng.normal(size=(64, 64)).astype(np.float32)
    floats[:5] = np.nan
    floats[5:8] = np.inf
    tifffile.imwrite(folder / "float_nan_inf.tif", floats)
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(folder / "constant.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8)).save(folder / "rgba.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(folder / "one_pixel.png")
    tifffile.imwrite(folder / "stack.tif", rng.integers(0, 255, (3, 32, 32), dtype=np.uint8))
    (folder / "text_renamed.png").write_text("not an image")
    (folder / "truncated.png").write_bytes(good.read_bytes()[:200])
    (folder / "notes.txt").write_text("ignored: not an image type")
    (folder / "model.pt").write_bytes(b"\x80\x04K\x01.")
    return folder


def test_every_file_gets_a_prediction_or_a_clear_message(make_napari_viewer, qtbot, awkward_folder):
    viewer = make_napari_viewer()
    dock = HybridSegDock(viewer, device="cpu", choose_start_model=False)
    viewer.window.add_dock_widget(dock)
    assert dock.open_folder(awkward_folder)
    assert sorted(dock.session.keys()) == sorted(READABLE + list(UNREADABLE))  # .txt and .pt are not offered

    for key, reason in UNREADABLE.items():
        dock.show_image(key)
        assert f"Cannot show {key}" in dock.status.text() and reason in dock.status.text()

    for key in READABLE:
        dock.show_image(key)
        assert dock.key == key
        qtbot.waitUntil(lambda: viewer.layers[MASK_LAYER].editable, timeout=60_000)
        image, mask = viewer.layers[IMAGE_LAYER].data, viewer.layers[MASK_LAYER].data
        assert mask.shape == image.shape[:2]
        assert "Cannot" not in dock.status.text()

    # a correction on an image with NaN and inf is accepted and kept
    dock.show_image("float_nan_inf.tif")
    qtbot.waitUntil(lambda: viewer.layers[MASK_LAYER].editable, timeout=60_000)
    corrected = np.zeros_like(viewer.layers[MASK_LAYER].data)
    corrected[10:20, 10:20] = 1
    viewer.layers[MASK_LAYER].data = corrected
    dock.accept()
    assert np.array_equal(dock.session.store.accepted_mask("float_nan_inf.tif") > 0, corrected > 0)
    dock.close_project()
