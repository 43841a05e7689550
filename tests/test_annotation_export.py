"""Exports without the viewer: PNG names from image stems, and an OME-Zarr plate of images of different sizes
and channels that both readers open whole."""

import json

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from napari_hybridseg.data.io import read_mask
from napari_hybridseg.export import ExportItem, export_ome_zarr, export_png, png_names, plate_grid


def test_png_names_are_stems_and_never_collide():
    assert png_names(["a.png", "b.tif", "c.png", "c.tif", "d"]) == {
        "a.png": "a.png", "b.tif": "b.png", "c.png": "c_png.png", "c.tif": "c_tif.png", "d": "d.png"}


def test_png_export_writes_each_mask_under_its_stem_with_provenance(tmp_path):
    items = [ExportItem("x.png", np.zeros((4, 5)), np.eye(4, 5, dtype=np.uint8), "x.png", "v0002"),
             ExportItem("y.tif", np.zeros((4, 5)), np.full((4, 5), 300, np.uint16), "y.tif")]
    export_png(tmp_path, items)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["provenance.json", "x.png", "y.png"]
    np.testing.assert_array_equal(read_mask(tmp_path / "y.png"), items[1].mask)
    index = json.loads((tmp_path / "provenance.json").read_text())
    assert index["x.png"]["model_version"] == "v0002" and index["y.tif"]["file"] == "y.png"


def test_a_plate_of_mixed_sizes_and_channels_opens_whole_and_keeps_each_image(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (30, 40), dtype=np.uint8)
    colour = rng.integers(0, 255, (20, 50, 3), dtype=np.uint8)
    masks = [np.eye(30, 40, dtype=np.uint8), np.ones((20, 50), np.uint8) * 2]
    out = export_ome_zarr(tmp_path / "mixed.zarr", [ExportItem("g.tif", grey, masks[0], shape=grey.shape),
                                                    ExportItem("c.png", lambda: colour, lambda: masks[1])])
    plate = next(iter(Reader(parse_url(str(out)))()))
    assert np.asarray(plate.data[0]).shape == (3, 30, 2 * 50)  # a 1 × 2 grid of 30 × 50 fields, three channels
    reader = pytest.importorskip("napari_ome_zarr._reader").napari_get_reader(str(out))
    labels = [data for data, meta, kind in reader() if kind == "labels"][0]
    grid = np.asarray(labels[0])
    np.testing.assert_array_equal(grid[:30, :40], masks[0])
    np.testing.assert_array_equal(grid[:20, 50:], masks[1])
    assert not grid[20:, 50:].any() and not grid[:, 40:50].any(), "padding is background"
    field = next(iter(Reader(parse_url(str(out / "A" / "1" / "0")))()))
    assert zarr.open_group(str(out / "A" / "1" / "0"), mode="r").attrs["napari_hybridseg"]["shape"] == [30, 40]
    np.testing.assert_array_equal(np.asarray(field.data[0])[0, :30, :40], grey)  # the grey image, repeated


def test_plate_rows_go_past_z():
    wells = plate_grid(800)  # 29 columns: 28 rows
    assert wells[0] == ("A", "1") and wells[-1][0] == "AB" and len(set(wells)) == 800
