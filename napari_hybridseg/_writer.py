"""napari writers: labels to OME-Zarr (with their image) and to PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .data.io import write_mask_png
from .export import ExportItem, export_ome_zarr


def write_labels_png(path: str, data: Any, meta: dict) -> list[str]:
    mask = np.asarray(data)
    if mask.ndim != 2:
        raise ValueError(f"PNG holds a 2-D label image; this layer has shape {mask.shape}")
    return [str(write_mask_png(path, mask))]


def write_ome_zarr(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """One OME-Zarr image (the image layer, or the first labels layer when there is none)
    with every labels layer under ``labels/``."""
    images = [(np.asarray(d), m) for d, m, kind in layer_data if kind == "image"]
    labels = [(np.asarray(d), m) for d, m, kind in layer_data if kind == "labels"]
    image = images[0][0] if images else labels[0][0]
    path = Path(path)
    key = path.name.removesuffix(".zarr") or "image"
    items = [ExportItem(key, image, mask, source_file=meta.get("name")) for mask, meta in labels[:1]]
    export_ome_zarr(path, items)
    if len(labels) > 1:
        import zarr
        from ome_zarr.writer import write_labels

        group = zarr.open_group(str(path / key), mode="a")
        for mask, meta in labels[1:]:
            write_labels(mask, group, name=meta.get("name", "labels"), axes="yx", scaler=None, scale_factors=())
    return [str(path)]
