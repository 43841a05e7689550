"""A model's class map → the label image the user sees: one id per object (see :mod:`.outputs`).

* an instances model: the interior's 4-connected components seed a watershed that floods the foreground
  (interior and boundary), so the boundary pixels between touching objects go to the nearer seed; a
  stretch of foreground with no interior at all (an object too small to have any) is an object of its own;
* a binary semantic model: the foreground's connected components (touching objects stay one);
* a semantic model of several classes: the class map itself.

numpy and scikit-image only: the viewer splits predictions before torch is loaded.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

from .outputs import BOUNDARY, INSTANCES, INTERIOR, output_kind


def split_instances(classes: np.ndarray) -> np.ndarray:
    """Background / interior / boundary class map (H, W) → instance labels (int32, 0 = background)."""
    classes = np.asarray(classes)
    if classes.ndim != 2:
        raise ValueError(f"a class map must be 2-D, got shape {classes.shape}")
    foreground = (classes == INTERIOR) | (classes == BOUNDARY)
    seeds = connected_components(classes == INTERIOR, connectivity=1)
    if not seeds.any():
        return connected_components(foreground, connectivity=1).astype(np.int32)
    # flat ground (interior 1, boundary 2): each boundary pixel joins the seed it is fewest steps from
    labels = watershed(classes.astype(np.uint8), markers=seeds, mask=foreground, connectivity=1)
    unseeded = foreground & (labels == 0)
    if unseeded.any():
        extra = connected_components(unseeded, connectivity=1)
        labels[unseeded] = extra[unseeded] + labels.max()
    return labels.astype(np.int32, copy=False)


def labels_from_classes(classes: np.ndarray, metadata: Mapping[str, Any]) -> np.ndarray:
    """The label image (uint16, or uint32 past 65535 objects) of a class map by the model ``metadata`` describes."""
    classes = np.asarray(classes)
    if output_kind(metadata) == INSTANCES:
        labels = split_instances(classes)
    elif int(metadata.get("n_classes", 2)) == 2:
        labels = connected_components(classes > 0)
    else:
        return classes
    return labels.astype(np.uint16 if labels.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32)


def count_objects(labels: np.ndarray) -> int:
    """The number of distinct non-zero ids in a label image."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return 0
    if labels.dtype.kind == "u" and labels.itemsize <= 2:
        return int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
    return int(np.unique(labels[labels != 0]).size)
