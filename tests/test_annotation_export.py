"""Exports without the viewer: PNG names from image stems, and an OME-Zarr plate of images of different sizes
and channels that both readers open whole."""

import json

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from napari_hybridseg.data.io import read_mask
from napari_hybridseg.export import ExportItem, export_ome_zarr, export_png, object_table, png_names, plate_grid


def test_the_table_of_objects_has_each_id_with_its_area_and_centroid():
    mask = np.zeros((6, 8), dtype=np.uint16)
    mask[0:2, 0:2] = 7  # area 4, centre (0.5, 0.5)
    mask[3:6, 5:6] = 300  # area 3, centre (4, 5)
    assert object_table(mask) == [(7, 4, 0.5, 0.5), (300, 3, 4.0, 5.0)]
    assert object_table(np.zeros((3, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="2-D"):
        object_table(np.zeros((2, 3, 3), np.uint8))


def test_png_names_are_stems_and_never_collide():
    assert png_names(["a.png", "b.tif", "c.png", "c.tif", "d"]) == {
        "a.png": "a.png", "b.tif": "b.png", "c.png": "c_png.png", "c.tif": "c_tif.png", "d": "d.png"}


def test_png_export_writes_each_mask_under_its_stem_with_provenance(tmp_path):
    items = [ExportItem("x.png", np.zeros((4, 5)), np.eye(4, 5, dtype=np.uint8), "x.png", "v0002"),
             ExportItem("y.tif", np.zeros((4, 5)), np.full((4, 5), 300, np.uint16), "y.tif")]
    export_png(tmp_path, items)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects", "provenance.json", "x.png", "y.png"]
    np.testing.assert_array_equal(read_mask(tmp_path / "y.png"), items[1].mask)
    index = json.loads((tmp_path / "provenance.json").read_text())
    assert index["x.png"]["model_version"] == "v0002" and index["y.tif"]["file"] == "y.png"
    assert index["y.tif"]["objects"] == "objects/y.csv"
    assert (tmp_path / "objects" / "y.csv").read_text() == "id,area,centroid_y,centroid_x\n300,20,1.5,2.0\n"
    assert (tmp_path / "objects" / "x.csv").read_text().splitlines()[1:] == ["1,4,1.5,1.5"]


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
    attributes = zarr.open_group(str(out / "A" / "1" / "0"), mode="r").attrs["napari_hybridseg"]
    assert attributes["shape"] == [30, 40] and attributes["objects"] == "objects/g.csv"
    assert (out / "objects" / "c.csv").read_text().splitlines() == ["id,area,centroid_y,centroid_x",
                                                                     "2,1000,9.5,24.5"]
    np.testing.assert_array_equal(np.asarray(field.data[0])[0, :30, :40], grey)  # the grey image, repeated


def test_plate_rows_go_past_z():
    wells = plate_grid(800)  # 29 columns: 28 rows
    assert wells[0] == ("A", "1") and wells[-1][0] == "AB" and len(set(wells)) == 800
