"""Writing predicted or corrected masks: a folder of PNGs or an OME-Zarr plate.

The OME-Zarr export is an NGFF *plate*: one well per image (rows A, B, …; columns 1, 2, …), each with
one field ``0`` that holds the image and its mask as the label image ``labels/mask``. ome-zarr's reader
and napari-ome-zarr open the whole export as one grid of images with the masks over them, and each
field on its own. Images of one folder usually share a size; where they do not, every field is padded
(zeros at the bottom and right; a grey image repeated into the colour channels) to the largest, because
a plate is a grid of equal tiles, and each field's attributes say the image's own size.

Both exports keep the masks' ids (one per object) and write each image's table of objects, one row per id
(``id, area, centroid_y, centroid_x``, in pixels), as ``objects/<stem>.csv``: in the PNG folder, or in the
plate's folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .atomic import atomic_folder, atomic_path
from .data.io import write_mask_png

FORMATS = ("png", "zarr")
EXPORT_FORMAT = "napari-hybridseg-export"
PROVENANCE_FILE = "provenance.json"
OBJECTS_FOLDER = "objects"
OBJECT_COLUMNS = ("id", "area", "centroid_y", "centroid_x")


class MaskWriter:
    """Writes one mask per image name, as ``<out>/<name>.png`` or array ``<name>`` of a zarr group."""

    def __init__(self, out: str | os.PathLike, fmt: str = "png"):
        if fmt not in FORMATS:
            raise ValueError(f"unknown mask format {fmt!r}; choose png or zarr")
        self.out = Path(out)
        self.fmt = fmt
        self._group = None
        if fmt == "png":
            self.out.mkdir(parents=True, exist_ok=True)
        else:
            import zarr

            self._group = zarr.open_group(str(self.out), mode="a")

    def write(self, name: str, mask: np.ndarray) -> None:
        mask = np.asarray(mask)
        if self.fmt == "png":
            write_mask_png(self.out / f"{name}.png", mask)
            return
        dtype = np.uint8 if mask.max(initial=0) < 256 else np.uint16
        chunks = tuple(min(512, s) for s in mask.shape)
        array = self._group.create_array(name, shape=mask.shape, dtype=dtype, chunks=chunks, overwrite=True)
        array[...] = mask.astype(dtype)


class ExportItem:
    """One accepted mask with its image and where it came from. ``image`` and ``mask`` may be arrays or
    functions that read them, so that an export of many images holds one image in memory at a time;
    ``shape`` (the image's, when known) spares reading the pixels to plan the export."""

    def __init__(self, key: str, image: np.ndarray | Callable[[], np.ndarray],
                 mask: np.ndarray | Callable[[], np.ndarray], source_file: str | None = None,
                 model_version: str | None = None, accepted_at: str | None = None,
                 shape: tuple[int, ...] | None = None):
        self.key, self.source_file, self.model_version, self.accepted_at = key, source_file, model_version, accepted_at
        self._image, self._mask, self._shape = image, mask, shape

    @property
    def image(self) -> np.ndarray:
        return np.asarray(self._image() if callable(self._image) else self._image)

    @property
    def mask(self) -> np.ndarray:
        return np.asarray(self._mask() if callable(self._mask) else self._mask)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._shape) if self._shape else self.image.shape

    def provenance(self) -> dict:
        return {"image": self.key, "source_file": self.source_file, "model_version": self.model_version or "default",
                "accepted_at": self.accepted_at}


def object_table(mask: np.ndarray) -> list[tuple[int, int, float, float]]:
    """One row per id of a label image: (id, area in pixels, centroid row, centroid column), by id."""
    from skimage.measure import regionprops_table

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    table = regionprops_table(mask.astype(np.int64, copy=False), properties=("label", "area", "centroid"))
    return [(int(i), int(a), round(float(y), 3), round(float(x), 3))
            for i, a, y, x in zip(table["label"], table["area"], table["centroid-0"], table["centroid-1"])]


def write_object_table(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write :func:`object_table` of ``mask`` as CSV with a header row (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(OBJECT_COLUMNS)
    writer.writerows(object_table(mask))
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())
    return path


def _table_name(png_name: str) -> str:
    return f"{OBJECTS_FOLDER}/{Path(png_name).stem}.csv"


def png_names(keys: Iterable[str]) -> dict[str, str]:
    """The PNG file name of each image key: its stem (``a.tif`` → ``a.png``); where two keys share a stem,
    their suffix is kept in the name (``a_tif.png``, ``a_png.png``) so that neither overwrites the other."""
    keys = list(keys)
    stems = Counter(Path(key).stem for key in keys)
    names = {}
    for key in keys:
        path = Path(key)
        unique = stems[path.stem] == 1 and path.stem
        names[key] = f"{path.stem}.png" if unique else f"{path.stem}_{path.suffix.lstrip('.') or 'image'}.png"
    return names


def iter_export_png(out: str | os.PathLike, items: Sequence[ExportItem]) -> Iterator[str]:
    """Write ``<out>/<stem>.png`` label images, their tables of objects and ``<out>/provenance.json``; yields
    each key once written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / PROVENANCE_FILE
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    names = png_names(item.key for item in items)
    for item in items:
        mask = item.mask
        write_mask_png(out / names[item.key], mask)
        write_object_table(out / _table_name(names[item.key]), mask)
        index[item.key] = {**item.provenance(), "file": names[item.key], "objects": _table_name(names[item.key])}
        yield item.key
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))


def _row_name(index: int) -> str:
    """A, B, …, Z, AA, AB, …"""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def plate_grid(n: int) -> list[tuple[str, str]]:
    """(row, column) names of ``n`` wells on a near-square grid, row by row."""
    columns = max(1, int(np.ceil(np.sqrt(n))))
    return [(_row_name(i // columns), str(i % columns + 1)) for i in range(n)]


def _tile(shapes: Iterable[tuple[int, ...]]) -> tuple[int, int, int]:
    """(height, width, channels) of a field that every image fits in; 0 channels: all grey."""
    shapes = list(shapes)
    return (max(s[0] for s in shapes), max(s[1] for s in shapes),
            max((s[2] for s in shapes if len(s) == 3), default=0))


def _fit(image: np.ndarray, tile: tuple[int, int, int], fill: float) -> np.ndarray:
    """``image`` in a field of ``tile``: channels first, padded with zeros (an added alpha channel opaque)."""
    height, width, channels = tile
    if channels:
        if image.ndim == 2:
            image = np.repeat(image[..., None], min(channels, 3), axis=-1)
        if image.shape[-1] < channels:  # an alpha channel that this image lacks: opaque
            image = np.concatenate([image, np.full(image.shape[:2] + (1,), fill, image.dtype)], axis=-1)
        image = np.moveaxis(image, -1, 0)
    pad = [(0, 0)] * (image.ndim - 2) + [(0, height - image.shape[-2]), (0, width - image.shape[-1])]
    return np.pad(image, pad) if any(after for _, after in pad) else image


def _mask_dtype(mask: np.ndarray) -> type:
    return np.uint8 if mask.max(initial=0) < 256 else np.uint16 if mask.max(initial=0) < 65536 else np.uint32


def write_field(group, image: np.ndarray, mask: np.ndarray, name: str, attributes: dict) -> None:
    """One NGFF image in ``group`` (axes ``cyx`` or ``yx``) with ``mask`` as its label image ``labels/mask``."""
    from ome_zarr.writer import write_image, write_labels

    write_image(image, group, axes="cyx" if image.ndim == 3 else "yx", scale_factors=(), name=name)
    group.attrs["napari_hybridseg"] = attributes
    write_labels(mask.astype(_mask_dtype(mask)), group, name="mask", axes="yx", scaler=None, scale_factors=(),
                 label_metadata={"source": {"image": "../../"}})
    group["labels"]["mask"].attrs["napari_hybridseg"] = attributes


def _is_export(path: Path) -> bool:
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return attrs.get("napari_hybridseg", {}).get("format") == EXPORT_FORMAT


def _check_target(out: Path) -> None:
    """An existing ``out`` is replaced only when it is an earlier export: nothing else is ever deleted."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or _is_export(out))):
        raise FileExistsError(f"{out} already exists and is not a napari-hybridseg export; "
                              "pick another name (nothing was written)")


def iter_export_ome_zarr(out: str | os.PathLike, items: Sequence[ExportItem]) -> Iterator[str]:
    """Write every item into an OME-Zarr plate at ``out`` (see the module's description); yields each key
    once written. The plate is built beside ``out`` and moved there at the end, replacing an earlier export:
    a failed or cancelled export leaves the earlier one as it was."""
    import zarr
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    out = Path(out)
    _check_target(out)
    if not items:
        raise ValueError("nothing to export")
    wells = plate_grid(len(items))
    tables = {key: _table_name(name) for key, name in png_names(item.key for item in items).items()}
    tile = _tile(item.shape for item in items)
    with atomic_folder(out) as partial:
        root = zarr.open_group(str(partial), mode="w")
        index = {}
        for item, (row, column) in zip(items, wells):
            image, mask = item.image, item.mask
            fill = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
            field = root.require_group(row).require_group(column).create_group("0")
            attributes = {**item.provenance(), "well": f"{row}/{column}", "shape": list(image.shape),
                          "objects": tables[item.key]}
            write_field(field, _fit(image, tile, fill), _fit(mask, tile[:2] + (0,), 0), item.key, attributes)
            write_object_table(partial / tables[item.key], mask)
            write_well_metadata(root[f"{row}/{column}"], [{"path": "0"}])
            index[item.key] = attributes
            yield item.key
        rows = list(dict.fromkeys(row for row, _ in wells))
        columns = list(dict.fromkeys(column for _, column in wells))
        write_plate_metadata(root, rows, columns, [f"{row}/{column}" for row, column in wells], name=out.stem)
        root.attrs["napari_hybridseg"] = {"format": EXPORT_FORMAT, "images": index}


def _run(steps: Iterator[str], out: str | os.PathLike) -> Path:
    for _ in steps:
        pass
    return Path(out)


def export_ome_zarr(out: str | os.PathLike, items: Sequence[ExportItem]) -> Path:
    """:func:`iter_export_ome_zarr` in one call."""
    return _run(iter_export_ome_zarr(out, items), out)


def export_png(out: str | os.PathLike, items: Sequence[ExportItem]) -> Path:
    """:func:`iter_export_png` in one call."""
    return _run(iter_export_png(out, items), out)


EXPORTERS = {"zarr": iter_export_ome_zarr, "png": iter_export_png}
