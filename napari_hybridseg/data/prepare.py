"""Turning raw images and label images into what the model takes.

Channel convention: a model has 1 or 3 image channels. Grey images feed a
3-channel model by replication, RGB images feed a 1-channel model as
luminance, and RGBA loses its alpha. Normalisation is per image: zero mean
and standard deviation ``sigma_data`` over all pixels and channels.
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _finite(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32, copy=False)
    if not np.isfinite(image).all():
        finite = image[np.isfinite(image)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        image = np.nan_to_num(image, nan=low, posinf=high, neginf=low)
    return image


def to_channels_first(image: np.ndarray, model_channels: int) -> np.ndarray:
    """(H, W[, C]) → (c, H, W) float32 with c = 1 or ``model_channels``.

    A grey image going to a 3-channel model stays single-channel here (it
    is replicated lazily by :func:`expand_channels`) to save memory.
    """
    image = _finite(np.asarray(image))
    if image.ndim == 2:
        return image[None]
    rgb = image[..., :3]
    if model_channels == 1:
        return (rgb @ _LUMA)[None]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def normalise(image_chw: np.ndarray, sigma_data: float = 0.5) -> np.ndarray:
    mean = float(image_chw.mean(dtype=np.float64))
    std = float(image_chw.std(dtype=np.float64))
    if std < 1e-8:
        return np.zeros_like(image_chw, dtype=np.float32)
    return ((image_chw - mean) * (sigma_data / std)).astype(np.float32)


def expand_channels(image_chw: np.ndarray, model_channels: int) -> np.ndarray:
    if image_chw.shape[0] == model_channels:
        return image_chw
    return np.broadcast_to(image_chw, (model_channels, *image_chw.shape[1:]))


def prepare_image(image: np.ndarray, model_channels: int, sigma_data: float = 0.5) -> np.ndarray:
    """Raw image → normalised (c, H, W) float32 (c may be 1 for a grey image)."""
    return normalise(to_channels_first(image, model_channels), sigma_data)


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
