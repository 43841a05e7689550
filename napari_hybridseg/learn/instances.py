"""Object-level scores between a predicted and a true label image (one id per object, 0 = background).

* ``f1``: objects matched one to one at IoU ≥ 0.5 (the matching with the largest summed IoU),
  F1 = 2·matched / (true objects + predicted objects);
* ``aji``: the aggregated Jaccard index (Kumar et al. 2017): each true object with the predicted object
  it overlaps most (by IoU), summed intersections over summed unions, every predicted object left
  unused added to the unions;
* ``count_error``: predicted objects − true objects.

Both images empty scores 1 (F1, AJI) and 0 (count error). numpy and scipy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_IOU = 0.5


class ObjectScores(NamedTuple):
    f1: float
    aji: float
    n_true: int
    n_pred: int
    matched: int

    @property
    def count_error(self) -> int:
        return self.n_pred - self.n_true

    def to_dict(self) -> dict[str, float | int]:
        return {"f1": self.f1, "aji": self.aji, "n_true": self.n_true, "n_pred": self.n_pred,
                "matched": self.matched, "count_error": self.count_error}


def _check(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"the {name} label image must hold integer ids, got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError(f"the {name} label image must not hold negative ids")
    return labels


class Overlaps(NamedTuple):
    """Pixel counts of every (true object, predicted object) pair and each object's area."""

    intersection: np.ndarray  # (n_true, n_pred)
    true_area: np.ndarray  # (n_true,)
    pred_area: np.ndarray  # (n_pred,)

    def iou(self) -> np.ndarray:
        union = self.true_area[:, None] + self.pred_area[None, :] - self.intersection
        return np.divide(self.intersection, union, out=np.zeros(union.shape), where=union > 0)


def overlaps(true: np.ndarray, pred: np.ndarray) -> Overlaps:
    true, pred = _check(true, "true"), _check(pred, "predicted")
    if true.shape != pred.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    true_ids, t = np.unique(true.ravel(), return_inverse=True)
    pred_ids, p = np.unique(pred.ravel(), return_inverse=True)
    counts = np.bincount(t * pred_ids.size + p, minlength=true_ids.size * pred_ids.size)
    counts = counts.reshape(true_ids.size, pred_ids.size)
    true_area, pred_area = counts.sum(1), counts.sum(0)
    rows, cols = true_ids != 0, pred_ids != 0
    return Overlaps(counts[rows][:, cols], true_area[rows], pred_area[cols])


def matched_objects(o: Overlaps, threshold: float = MATCH_IOU) -> int:
    """Pairs matched one to one with IoU ≥ ``threshold``, maximising the summed IoU of the matches."""
    iou = o.iou()
    if iou.size == 0:
        return 0
    eligible = np.where(iou >= threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(eligible, maximize=True)
    return int(np.count_nonzero(eligible[rows, cols] > 0))


def aggregated_jaccard(o: Overlaps) -> float:
    n_true, n_pred = o.intersection.shape
    if n_true == 0:
        return 1.0 if n_pred == 0 else 0.0
    if n_pred == 0:
        return 0.0
    best = o.iou().argmax(1)
    hit = o.intersection[np.arange(n_true), best] > 0
    inter = o.intersection[np.arange(n_true), best] * hit
    union = np.where(hit, o.true_area + o.pred_area[best] - inter, o.true_area)
    unused = np.ones(n_pred, dtype=bool)
    unused[best[hit]] = False
    return float(inter.sum() / (union.sum() + o.pred_area[unused].sum()))


def object_scores(true: np.ndarray, pred: np.ndarray, threshold: float = MATCH_IOU) -> ObjectScores:
    """F1 at IoU ≥ ``threshold``, AJI and the object counts of ``pred`` against ``true``."""
    o = overlaps(true, pred)
    n_true, n_pred = o.intersection.shape
    matched = matched_objects(o, threshold)
    f1 = 1.0 if n_true + n_pred == 0 else 2 * matched / (n_true + n_pred)
    return ObjectScores(float(f1), aggregated_jaccard(o), n_true, n_pred, matched)
