"""Paired bootstrap confidence intervals for differences between two arms of a benchmark."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n_seeds: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Interval for mean(a − b) where ``a[s, i]`` and ``b[s, i]`` score the same seed ``s`` on the same test image ``i``.

    Seeds and test images are both resampled with replacement (a two-way
    bootstrap), so the interval covers the spread of training runs and the
    finite test set. A 1-D input is one score per seed.
    """
    a, b = np.atleast_2d(np.asarray(a, float).T).T, np.atleast_2d(np.asarray(b, float).T).T
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same shape, got {a.shape} and {b.shape}")
    diff = a - b
    n_seeds, n_images = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    images = rng.integers(0, n_images, size=(n_boot, n_images))
    # mean over a resampled seeds × images grid = mean over seeds of (row means over the resampled images)
    row_means = np.stack([diff[:, idx].mean(axis=1) for idx in images])  # (n_boot, n_seeds)
    means = np.take_along_axis(row_means, seeds, axis=1).mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(diff.mean()), float(low), float(high), n_seeds)
