"""Writing predicted or corrected masks: a folder of PNGs or a zarr store."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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
