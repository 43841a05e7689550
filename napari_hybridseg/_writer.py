"""napari writers (*File > Save Layers*): labels to OME-Zarr (with their image) and to PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .data.io import write_mask_png
from .atomic import atomic_folder
from .export import write_field


def write_labels_png(path: str, data: Any, meta: dict) -> list[str]:
    mask = np.asarray(data)
    if mask.ndim != 2:
        raise ValueError(f"PNG holds a 2-D label image; this layer has shape {mask.shape}")
    return [str(write_mask_png(path, mask))]


def _channels_first(image: np.ndarray) -> np.ndarray:
    return np.moveaxis(image, -1, 0) if image.ndim == 3 else image


def write_ome_zarr(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """One OME-Zarr image at ``path`` (the image layer, or the first labels layer when there is none) with
    every labels layer under ``labels/`` (the first as ``mask``). Written beside ``path`` and moved there."""
    from ome_zarr.writer import write_labels

    images = [(np.asarray(d), m) for d, m, kind in layer_data if kind == "image"]
    labels = [(np.asarray(d), m) for d, m, kind in layer_data if kind == "labels"]
    if not labels:
        raise ValueError("select at least one labels layer to save as OME-Zarr")
    path = Path(path)
    if path.exists() and not (path / "zarr.json").is_file():  # napari's dialog asked before replacing a zarr
        raise FileExistsError(f"{path} already exists and is not a zarr store; pick another name (nothing was written)")
    image = images[0][0] if images else labels[0][0]
    import zarr

    with atomic_folder(path) as partial:
        group = zarr.open_group(str(partial), mode="w")
        (mask, meta), *others = labels
        attributes = {"image": images[0][1].get("name") if images else None, "labels": meta.get("name")}
        write_field(group, _channels_first(image), mask, path.name.removesuffix(".zarr") or "image", attributes)
        for other, other_meta in others:
            write_labels(other, group, name=other_meta.get("name", "labels"), axes="yx", scaler=None,
                         scale_factors=())
    return [str(path)]
