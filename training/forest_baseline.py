"""The classic tool a user would pick instead: an ilastik-style random-forest pixel classifier.

Features are scikit-image's multiscale intensity, edge and texture filters of
each channel; a scikit-learn random forest is fitted on a random sample of the
labelled pixels of every labelled image.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from skimage.feature import multiscale_basic_features
from sklearn.ensemble import RandomForestClassifier

from napari_hybridseg.data.datasets import Sample
from napari_hybridseg.data.prepare import labels_to_classes


def _as_float_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3]  # RGBA: the alpha channel carries no stain
    lo, hi = np.nanpercentile(image, (0.5, 99.5))
    return np.nan_to_num((image - lo) / max(hi - lo, 1e-6))


class PixelForest:
    """Fit on labelled samples, predict a class map for any image of the same channel count."""

    def __init__(self, n_classes: int = 2, pixels_per_image: int = 5_000, n_estimators: int = 50, seed: int = 0):
        self.n_classes = n_classes
        self.pixels_per_image = pixels_per_image
        self.seed = seed
        self.features = partial(
            multiscale_basic_features, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=16, channel_axis=-1
        )
        self.forest = RandomForestClassifier(
            n_estimators=n_estimators, min_samples_leaf=5, n_jobs=1, random_state=seed
        )

    def fit(self, samples: list[Sample]) -> "PixelForest":
        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        for s in samples:
            feats = self.features(_as_float_hwc(s.image))
            feats = feats.reshape(-1, feats.shape[-1])
            classes = labels_to_classes(s.labels, self.n_classes).reshape(-1)
            pick = rng.choice(classes.size, size=min(self.pixels_per_image, classes.size), replace=False)
            xs.append(feats[pick])
            ys.append(classes[pick])
        self.forest.fit(np.concatenate(xs), np.concatenate(ys))
        return self

    def predict(self, image: np.ndarray) -> np.ndarray:
        feats = self.features(_as_float_hwc(image))
        return self.forest.predict(feats.reshape(-1, feats.shape[-1])).reshape(feats.shape[:2]).astype(np.uint8)
