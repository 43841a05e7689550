"""Turning raw images and label images into what the model takes.

Channel convention: a model has 1 or 3 image channels. Grey images feed a
3-channel model by replication, RGB images feed a 1-channel model as
luminance, and RGBA loses its alpha. Normalisation is per image: zero mean
and standard deviation ``sigma_data`` over all pixels and channels.
"""

from __future__ import annotations

import numpy as np

#: The noise level σ that stands for a clean image: the model segments at it (σ_min of the EDM schedule).
SIGMA_MIN = 0.002
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _finite(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32, copy=False)
    if not np.isfinite(image).all():
        finite = image[np.isfinite(image)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        image = np.nan_to_num(image, nan=low, posinf=high, neginf=low)
    return image


def _casts_finite(image: np.ndarray) -> bool:
    """True when ``image`` cast to float32 is certainly all finite (integers, finite float16/32)."""
    if image.dtype.kind in "biu":
        return True
    if image.dtype in (np.float16, np.float32):
        return bool(np.isfinite(image).all())
    return False


def _channels_first(image: np.ndarray, model_channels: int) -> tuple[np.ndarray, bool]:
    """:func:`to_channels_first`, also saying whether the result is a new array (safe to modify)."""
    image = np.asarray(image)
    if image.ndim == 3 and model_channels != 1 and _casts_finite(image):
        # cast and transpose in one pass: one full-size allocation instead of two
        return np.ascontiguousarray(image[..., :3].transpose(2, 0, 1), dtype=np.float32), True
    if image.dtype.kind in "biu":
        converted = image.astype(np.float32)  # integers are always finite
    else:
        converted = _finite(image)
    fresh = not np.may_share_memory(converted, image)
    if converted.ndim == 2:
        return converted[None], fresh
    rgb = converted[..., :3]
    if model_channels == 1:
        return (rgb @ _LUMA)[None], True
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)), True


def to_channels_first(image: np.ndarray, model_channels: int) -> np.ndarray:
    """(H, W[, C]) → (c, H, W) float32 with c = 1 or ``model_channels``.

    A grey image going to a 3-channel model stays single-channel here (it
    is replicated lazily by :func:`expand_channels`) to save memory.
    """
    return _channels_first(image, model_channels)[0]


def _mean_std(image: np.ndarray, chunk: int = 1 << 18) -> tuple[float, float]:
    """Mean and population std accumulated in float64 without a full-size float64 temporary."""
    flat = image.reshape(-1)
    mean = float(flat.mean(dtype=np.float64))  # a buffered reduction: no full-size copy
    ss = 0.0
    for i in range(0, flat.size, chunk):
        d = flat[i : i + chunk].astype(np.float64) - mean
        ss += float(np.dot(d, d))
    return mean, (ss / flat.size) ** 0.5 if flat.size else float("nan")


def _normalise(image_chw: np.ndarray, sigma_data: float, inplace: bool) -> np.ndarray:
    mean, std = _mean_std(image_chw)
    if std < 1e-8:
        return np.zeros_like(image_chw, dtype=np.float32)
    if image_chw.dtype != np.float32:
        return ((image_chw - mean) * (sigma_data / std)).astype(np.float32)
    # float32 with Python-float scalars stays float32 (NEP 50): the same values, one allocation at most
    out = image_chw if inplace else np.empty_like(image_chw)
    np.subtract(image_chw, mean, out=out)
    out *= sigma_data / std
    return out


def normalise(image_chw: np.ndarray, sigma_data: float = 0.5) -> np.ndarray:
    """Zero mean and standard deviation ``sigma_data`` over all pixels and channels (a new float32 array)."""
    return _normalise(image_chw, sigma_data, inplace=False)


def expand_channels(image_chw: np.ndarray, model_channels: int) -> np.ndarray:
    if image_chw.shape[0] == model_channels:
        return image_chw
    return np.broadcast_to(image_chw, (model_channels, *image_chw.shape[1:]))


def prepare_image(image: np.ndarray, model_channels: int, sigma_data: float = 0.5) -> np.ndarray:
    """Raw image → normalised (c, H, W) float32 (c may be 1 for a grey image)."""
    chw, fresh = _channels_first(image, model_channels)
    return _normalise(chw, sigma_data, inplace=fresh)


def model_input(image: np.ndarray, model_channels: int, sigma_data: float = 0.5) -> np.ndarray:
    """Raw image → normalised (model_channels, H, W) float32."""
    return np.ascontiguousarray(expand_channels(prepare_image(image, model_channels, sigma_data), model_channels))


def labels_to_classes(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Label image → class map (int64): ``labels > 0`` when binary, else class ids."""
    labels = np.asarray(labels)
    if n_classes == 2:
        return (labels > 0).astype(np.int64)
    if labels.max(initial=0) >= n_classes:
        raise ValueError(f"mask holds label {int(labels.max())} but the model has {n_classes} classes")
    return labels.astype(np.int64)
