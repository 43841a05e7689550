"""Checking an image file without decoding its pixels: its header, its shape and whether the file is whole.

Opening a folder checks every file this way in the background, so a file that cannot be used is marked in
the list (with the reason) before the user reaches it. A header is a few hundred bytes and the end-of-file
marker a few more: a folder of big images is not read twice.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..data.io import MAX_PIXELS

_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - n))
        return f.read()


def _shape_problem(name: str, shape: tuple[int, ...]) -> str | None:
    """Why an image of ``shape`` (as decoded, channels last) cannot be labelled, or None."""
    if len(shape) == 3 and shape[-1] == 1:
        shape = shape[:2]
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))):
        return (f"{name} has shape {tuple(shape)}: expected a 2-D grey (H, W) or colour (H, W, 3|4) image; "
                "3-D stacks and time series must be split into 2-D slices")
    if min(shape[:2]) < 1:
        return f"{name} is empty (shape {tuple(shape)})"
    if shape[0] * shape[1] > MAX_PIXELS:
        return (f"{name} is {shape[1]} × {shape[0]} pixels, more than the {MAX_PIXELS / 1e6:.0f} M pixels "
                "napari-hybridseg opens; crop it or split it into tiles first")
    return None


def _tiff_problem(path: Path) -> str | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        size = os.path.getsize(path)
        for page in series.pages:  # each strip or tile must lie inside the file
            offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
            if any(o + c > size for o, c in zip(offsets, counts)):
                return f"{path.name} is cut short (its pixel data ends past the end of the file)"
        return _shape_problem(path.name, tuple(series.shape))


def _pil_problem(path: Path) -> str | None:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:  # reads the header only
            bands = len(img.getbands()) if img.mode != "P" else 3
            shape = img.size[::-1] + ((bands,) if bands > 1 else ())
            kind = img.format
    ending = {"PNG": _PNG_END, "JPEG": _JPEG_END}.get(kind)
    if ending is not None and ending not in _tail(path, 64):
        return f"{path.name} is cut short (the {kind} file has no end marker)"
    return _shape_problem(path.name, shape)


def probe_image_file(path: str | os.PathLike) -> str | None:
    """Why the image file at ``path`` cannot be used (one sentence), or None when it looks whole and usable."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _tiff_problem(path)
        return _pil_problem(path)
    except FileNotFoundError:
        return f"{path.name} is no longer in {path.parent}"
    except Exception as err:  # noqa: BLE001 (any decoder's failure is a reason to give the user)
        if type(err).__name__ == "DecompressionBombError":
            return f"{path.name} is larger than the {MAX_PIXELS / 1e6:.0f} M pixels napari-hybridseg opens"
        return f"{path.name} could not be read as an image ({type(err).__name__}: {err})"
