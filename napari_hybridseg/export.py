"""Writing predicted or corrected masks: a folder of PNGs or a zarr store."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .atomic import atomic_path
from .data.io import write_mask_png

FORMATS = ("png", "zarr")


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


@dataclass
class ExportItem:
    """One accepted mask with its image and where it came from."""

    key: str
    image: np.ndarray
    mask: np.ndarray
    source_file: str | None = None
    model_version: str | None = None
    accepted_at: str | None = None

    def provenance(self) -> dict:
        return {"image": self.key, "source_file": self.source_file, "model_version": self.model_version or "default",
                "accepted_at": self.accepted_at}


def _image_axes(image: np.ndarray) -> tuple[np.ndarray, str]:
    """NGFF wants channels first: (H, W, C) → (C, H, W) with axes "cyx"."""
    if image.ndim == 3:
        return np.moveaxis(image, -1, 0), "cyx"
    return image, "yx"


def export_ome_zarr(out: str | os.PathLike, items: Iterable[ExportItem]) -> Path:
    """Write each image as an OME-Zarr (NGFF) image group ``<out>/<key>`` with its mask
    as the label image ``labels/mask``; the root lists the images and their provenance."""
    import zarr
    from ome_zarr.writer import write_image, write_labels

    out = Path(out)
    root = zarr.open_group(str(out), mode="a")
    index = dict(root.attrs.get("napari_hybridseg", {}).get("images", {}))
    for item in items:
        image, axes = _image_axes(np.asarray(item.image))
        group = root.create_group(item.key, overwrite=True)
        write_image(image, group, axes=axes, scale_factors=(), name=item.key)
        group.attrs["napari_hybridseg"] = item.provenance()
        mask = np.asarray(item.mask)
        mask = mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16)
        write_labels(mask, group, name="mask", axes="yx", scaler=None, scale_factors=(),
                     label_metadata={"source": {"image": "../../"}})
        group["labels"]["mask"].attrs["napari_hybridseg"] = item.provenance()
        index[item.key] = item.provenance()
    root.attrs["napari_hybridseg"] = {"format": "napari-hybridseg-export", "images": index}
    return out


def export_png(out: str | os.PathLike, items: Iterable[ExportItem]) -> Path:
    """Write ``<out>/<key>.png`` label images and ``<out>/provenance.json``."""
    out = Path(out)
    writer = MaskWriter(out, "png")
    index_path = out / "provenance.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for item in items:
        writer.write(item.key, item.mask)
        index[item.key] = item.provenance()
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return out
