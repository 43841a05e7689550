"""Reading images and masks from disk, with clear errors for what cannot be used."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
# Pillow's own decompression-bomb limit; applied to TIFF too, so every format has the same ceiling
# (a 13000 × 13000 image; larger ones need tens of GB of working memory to predict)
MAX_PIXELS = 178_956_970


class ImageReadError(ValueError):
    """A file that cannot be used as an image or mask, with the reason."""


def is_image_file(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def read_array(path: str | os.PathLike, palette_as_indices: bool = False) -> np.ndarray:
    """Decode PNG/TIFF/JPEG into a numpy array; palette images become colours,
    or their palette indices (label values) with ``palette_as_indices``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path.name}: unsupported file type {suffix or '(none)'}; use PNG, TIFF or JPEG")
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                _check_size(path, tif.series[0].shape[-3:] if tif.series[0].shape[-1] in (3, 4) else tif.series[0].shape[-2:])
                return np.asarray(tif.asarray())
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes up to MAX_PIXELS are fine
            with Image.open(path) as img:
                _check_size(path, img.size[::-1])
                if img.mode == "P" and not palette_as_indices:
                    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                return np.asarray(img)
    except ImageReadError:
        raise
    except Exception as err:
        if type(err).__name__ == "DecompressionBombError":  # Pillow refuses before our own check can run
            raise ImageReadError(
                f"{path.name} is larger than the {MAX_PIXELS / 1e6:.0f} M pixels napari-hybridseg opens ({err}); "
                "crop it or split it into tiles first"
            ) from None
        raise ImageReadError(f"{path.name} could not be read as an image ({type(err).__name__}: {err})") from None


def _check_size(path: Path, shape: tuple[int, ...]) -> None:
    height, width = shape[:2]
    if height * width > MAX_PIXELS:
        raise ImageReadError(
            f"{path.name} is {width} × {height} pixels ({height * width / 1e6:.0f} M), more than the "
            f"{MAX_PIXELS / 1e6:.0f} M pixels napari-hybridseg opens; crop it or split it into tiles first"
        )


def as_2d_image(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``array`` is one 2-D image: (H, W) or (H, W, C) with C in 1, 3, 4."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
        if min(array.shape[:2]) < 1:
            raise ImageReadError(f"{name} is empty (shape {array.shape})")
        return array
    raise ImageReadError(
        f"{name} has shape {array.shape}: expected a 2-D grey (H, W) or colour (H, W, 3|4) image; "
        "3-D stacks and time series must be split into 2-D slices"
    )


def read_image(path: str | os.PathLike) -> np.ndarray:
    return as_2d_image(read_array(path), Path(path).name)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A label image (H, W) of non-negative integers."""
    array = read_array(path, palette_as_indices=True)
    if array.ndim == 3:
        if array.shape[-1] in (3, 4) and np.all(array[..., :3] == array[..., :1]):
            array = array[..., 0]
        else:
            raise ImageReadError(f"{Path(path).name}: a mask must be a single-channel label image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise ImageReadError(f"{Path(path).name}: a mask must hold integer labels, got {array.dtype}")
    if array.dtype != bool and array.min() < 0:
        raise ImageReadError(f"{Path(path).name}: a mask must not hold negative labels")
    return array


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a label image as PNG (8-bit when it fits, else 16-bit), atomically."""
    from PIL import Image

    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    if mask.max(initial=0) > np.iinfo(np.uint16).max or mask.min(initial=0) < 0:
        raise ValueError("PNG masks hold labels 0..65535 only")
    data = mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(data).save(tmp, format="PNG")
    return path
