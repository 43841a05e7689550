"""Scoring a model on labelled samples."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from ..data.datasets import Sample
from ..data.prepare import labels_to_classes
from ..model.inference import Segmenter
from .metrics import dice, iou


def evaluate(segmenter: Segmenter, samples: Iterable[Sample], progress: bool = False) -> dict[str, Any]:
    """Dice and IoU of a model for each image, and their means."""
    return evaluate_predictor(segmenter.predict, segmenter.model.n_classes, samples, progress)


def evaluate_predictor(
    predict: Callable[[np.ndarray], np.ndarray], n_classes: int, samples: Iterable[Sample], progress: bool = False
) -> dict[str, Any]:
    """Dice and IoU of any image → class-map function (a model, a baseline) for each image, and their means."""
    samples = list(samples)
    if progress:
        from tqdm import tqdm

        samples = tqdm(samples, desc="evaluate", unit="image", leave=False)
    rows = []
    for s in samples:
        if s.labels is None:
            raise ValueError(f"{s.id!r} has no mask to evaluate against")
        pred = predict(s.image)
        true = labels_to_classes(s.labels, n_classes)
        rows.append({"id": s.id, "dice": dice(pred, true, n_classes), "iou": iou(pred, true, n_classes)})
    return {
        "n_images": len(rows),
        "mean_dice": float(np.mean([r["dice"] for r in rows])) if rows else float("nan"),
        "mean_iou": float(np.mean([r["iou"] for r in rows])) if rows else float("nan"),
        "per_image": rows,
    }
