"""Scoring a model on labelled samples."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from ..data.datasets import Sample
from ..data.prepare import labels_to_classes
from ..data.targets import is_binary, object_regions
from ..model.inference import Segmenter
from ..model.outputs import INSTANCES, SEMANTIC, output_kind
from ..model.split import labels_from_classes
from .instances import object_scores
from .metrics import dice, iou


def evaluate(segmenter: Segmenter, samples: Iterable[Sample], progress: bool = False) -> dict[str, Any]:
    """Dice and IoU of a model for each image, and their means; for a model of objects (binary or instances),
    the object scores too (see :func:`evaluate_predictor`)."""
    meta = segmenter.metadata
    output = output_kind(meta)
    objects = None
    if output == INSTANCES or segmenter.model.n_classes == 2:
        objects = lambda classes: labels_from_classes(classes, meta)  # noqa: E731
    return evaluate_predictor(segmenter.predict, segmenter.model.n_classes, samples, progress, objects, output)


def true_objects(labels: np.ndarray) -> np.ndarray:
    """The objects of a true label image: its ids, or a binary mask's connected components."""
    return object_regions(labels) if is_binary(labels) else np.asarray(labels)


def evaluate_predictor(
    predict: Callable[[np.ndarray], np.ndarray], n_classes: int, samples: Iterable[Sample], progress: bool = False,
    objects: Callable[[np.ndarray], np.ndarray] | None = None, output: str = SEMANTIC,
) -> dict[str, Any]:
    """Dice and IoU of any image → class-map function (a model, a baseline) for each image, and their means.

    An instances model's Dice and IoU are of its foreground (interior and boundary) against ``labels > 0``.
    ``objects`` (class map → label image) adds each image's object scores (F1 at IoU 0.5, AJI, predicted
    and true object counts, count error; see :mod:`.instances`) and their means (``mean_f1``,
    ``mean_aji``, ``mean_abs_count_error``)."""
    samples = list(samples)
    if progress:
        from tqdm import tqdm

        samples = tqdm(samples, desc="evaluate", unit="image", leave=False)
    scored_classes = 2 if output == INSTANCES else n_classes
    rows = []
    for s in samples:
        if s.labels is None:
            raise ValueError(f"{s.id!r} has no mask to evaluate against")
        classes = predict(s.image)
        pred = (classes > 0).astype(np.int64) if output == INSTANCES else classes
        true = labels_to_classes(s.labels, scored_classes)
        row = {"id": s.id, "dice": dice(pred, true, scored_classes), "iou": iou(pred, true, scored_classes)}
        if objects is not None:
            row.update(object_scores(true_objects(s.labels), objects(classes)).to_dict())
        rows.append(row)
    summary = {"n_images": len(rows), "mean_dice": _mean(rows, "dice"), "mean_iou": _mean(rows, "iou")}
    if objects is not None:
        errors = [{"count_error": abs(r["count_error"])} for r in rows]
        summary.update(mean_f1=_mean(rows, "f1"), mean_aji=_mean(rows, "aji"),
                       mean_abs_count_error=_mean(errors, "count_error"))
    return {**summary, "per_image": rows}


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")
