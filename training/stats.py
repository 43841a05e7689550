"""Paired bootstrap confidence intervals for differences between two arms of a benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def seed_image_grid(records: list[dict[str, Any]], score: str | None = None, **match: Any) -> np.ndarray | None:
    """Seeds × scored images (seeds in order, images in id order) of the records whose fields equal ``match``,
    from each record's ``per_image`` scores (``score`` picks one score where each image has several); None when
    no record matches. What :func:`paired_bootstrap` pairs."""
    rows = sorted((r for r in records if all(r.get(k) == v for k, v in match.items())), key=lambda r: r["seed"])
    if not rows:
        return None
    ids = sorted(rows[0]["per_image"])
    pick = (lambda value: value) if score is None else (lambda value: value[score])
    return np.array([[pick(r["per_image"][i]) for i in ids] for r in rows], dtype=float)


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
    means = _bootstrap_means(diff, n_boot, np.random.default_rng(seed))
    return _interval(float(diff.mean()), means, level, diff.shape[0])


def paired_bootstrap_over_targets(
    pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Interval for the mean over targets of each target's mean(a − b), where each pair ``(a, b)`` is one target's
    seeds × test images grid as :func:`paired_bootstrap` takes it; every target's seeds and images are resampled
    within that target. ``n_seeds`` is the fewest seeds of any target."""
    if not pairs:
        raise ValueError("no target to average over")
    rng = np.random.default_rng(seed)
    diffs = [np.atleast_2d(np.asarray(a, float).T).T - np.atleast_2d(np.asarray(b, float).T).T for a, b in pairs]
    means = np.mean([_bootstrap_means(diff, n_boot, rng) for diff in diffs], axis=0)
    return _interval(float(np.mean([d.mean() for d in diffs])), means, level, min(d.shape[0] for d in diffs))


def _bootstrap_means(diff: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``diff`` (seeds × images) over ``n_boot`` resampled seeds × images grids."""
    n_seeds, n_images = diff.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    images = rng.integers(0, n_images, size=(n_boot, n_images))
    # mean over a resampled seeds × images grid = mean over seeds of (row means over the resampled images)
    row_means = np.stack([diff[:, idx].mean(axis=1) for idx in images])  # (n_boot, n_seeds)
    return np.take_along_axis(row_means, seeds, axis=1).mean(axis=1)


def _interval(mean: float, boot_means: np.ndarray, level: float, n_seeds: int) -> Interval:
    tail = (1 - level) / 2
    low, high = np.quantile(boot_means, [tail, 1 - tail])
    return Interval(mean, float(low), float(high), n_seeds)


def paired_bootstrap_over_source_models(
    a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Interval for mean(a − b) where ``a[p, s, i]`` and ``b[p, s, i]`` score source models pretrained with seed
    ``p``, fine-tuned with seed ``s``, on test image ``i``.

    Three-level bootstrap: pretraining seeds with replacement, then fine-tuning seeds within each of them, and test
    images once for all, so the interval also covers the luck of each arm's one source model, which
    :func:`paired_bootstrap` (one source model per arm) leaves out. With few pretraining seeds it is coarse and
    narrower than the truth (three seeds give ten distinct resamples). ``n_seeds`` is the number of pretraining seeds.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"paired scores must both be (pretraining seeds, seeds, images), got {a.shape} and {b.shape}")
    diff = a - b
    n_models, n_seeds, n_images = diff.shape
    rng = np.random.default_rng(seed)
    images = rng.integers(0, n_images, size=(n_boot, n_images))
    models = rng.integers(0, n_models, size=(n_boot, n_models))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_models, n_seeds))
    run_means = diff[:, :, images].mean(axis=-1)  # (models, seeds, n_boot): each run over the resampled images
    boot = np.arange(n_boot)[:, None, None]
    means = run_means[models[:, :, None], seeds, boot].mean(axis=(1, 2))
    return _interval(float(diff.mean()), means, level, n_models)
