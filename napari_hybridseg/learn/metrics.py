"""Overlap scores between predicted and true class maps."""

from __future__ import annotations

import numpy as np


def _overlaps(pred: np.ndarray, true: np.ndarray, n_classes: int) -> list[tuple[int, int, int]]:
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    out = []
    for c in range(1, n_classes):
        p, t = pred == c, true == c
        out.append((int(np.logical_and(p, t).sum()), int(p.sum()), int(t.sum())))
    return out


def dice(pred: np.ndarray, true: np.ndarray, n_classes: int = 2) -> float:
    """Mean Dice over the foreground classes; 1.0 where both are empty."""
    scores = [1.0 if p + t == 0 else 2 * i / (p + t) for i, p, t in _overlaps(pred, true, n_classes)]
    return float(np.mean(scores))


def iou(pred: np.ndarray, true: np.ndarray, n_classes: int = 2) -> float:
    scores = [1.0 if p + t == 0 else i / (p + t - i) for i, p, t in _overlaps(pred, true, n_classes)]
    return float(np.mean(scores))
