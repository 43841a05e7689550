"""Image records, mask validation and small JSON helpers for the project store."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any

import numpy as np

STATES = ("unlabelled", "predicted", "accepted")


@dataclass(frozen=True)
class ImageRecord:
    """What the project knows about one image (a snapshot; the store holds the truth)."""

    key: str
    file: str | None  # file name in the images folder, or None for images held in the store
    state: str  # one of STATES
    missing: bool  # the file has vanished from the folder (its masks are kept)
    mask_model: str | None  # model version the accepted mask started from (None: shipped default or none)
    accepted_at: str | None  # ISO time of the last accept
    shape: tuple[int, ...] | None  # image shape, known once the pixels were read
    prediction_model: str | None  # model version of the stored prediction, if any
    has_prediction: bool
    edited_from: str | None = None  # for an unaccepted edit: the model version whose prediction was edited


def record_from_json(key: str, raw: dict[str, Any]) -> ImageRecord:
    accepted = raw.get("accepted")
    prediction = raw.get("prediction")
    state = "accepted" if accepted else "predicted" if prediction else "unlabelled"
    shape = raw.get("shape")
    return ImageRecord(
        key=key,
        file=raw.get("file"),
        state=state,
        missing=bool(raw.get("missing", False)),
        mask_model=accepted.get("from_model") if accepted else None,
        accepted_at=accepted.get("at") if accepted else None,
        shape=tuple(shape) if shape else None,
        prediction_model=prediction.get("model") if prediction else None,
        has_prediction=bool(prediction),
        edited_from=prediction.get("edited_from") if prediction else None,
    )


def new_record(file: str | None, shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    shape = list(shape) if shape else None
    return {"file": file, "missing": False, "shape": shape, "accepted": None, "prediction": None}


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def node_name(key: str) -> str:
    """A zarr- and file-system-safe node name for ``key``: readable prefix + short hash."""
    safe = _UNSAFE.sub("_", key)[:80].lstrip("._-") or "image"
    return f"{safe}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def jsonable(value: Any, where: str = "value") -> Any:
    """Plain JSON types from numpy/torch scalars, tuples and paths; NaN/inf become None."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), where)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item(), where)
    raise TypeError(f"{where} of type {type(value).__name__} cannot be stored as JSON")


def validate_mask(mask: Any, image_shape: tuple[int, ...], key: str) -> np.ndarray:
    """Check a label image against its image and return it in the smallest storage dtype."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"the mask for {key!r} must be 2-D (height, width), got shape {mask.shape}")
    if tuple(mask.shape) != tuple(image_shape[:2]):
        raise ValueError(
            f"the mask for {key!r} has shape {mask.shape} but the image is {tuple(image_shape[:2])} (height, width)"
        )
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"the mask for {key!r} must hold integer labels (or bool), got {mask.dtype}")
    low, high = (int(mask.min()), int(mask.max())) if mask.size else (0, 0)
    if low < 0:
        raise ValueError(f"the mask for {key!r} holds negative labels (min {low}); labels must be 0 or more")
    if high >= 2**32:
        raise ValueError(f"the mask for {key!r} holds labels up to {high}; at most {2**32 - 1} are supported")
    dtype = np.uint8 if high < 2**8 else np.uint16 if high < 2**16 else np.uint32
    return mask.astype(dtype, copy=False)


def n_accepted_from_metadata(metadata: dict[str, Any]) -> int | None:
    """How many accepted images trained a checkpoint, when its metadata says."""
    for name in ("n_accepted", "n_labelled"):
        if isinstance(metadata.get(name), int):
            return metadata[name]
    finetuning = metadata.get("finetuning")
    if isinstance(finetuning, list) and finetuning and isinstance(finetuning[-1], dict):
        ids = finetuning[-1].get("labelled_ids")
        if isinstance(ids, list):
            return len(ids)
    return None
