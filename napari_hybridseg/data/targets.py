"""Label images → what the mask head is trained on, for each kind of output (see :mod:`..model.outputs`).

For an instances model, a label image is read as objects: each 4-connected region of one id is one object
(so a label painted on two separate nuclei is two objects). Each object's pixels within ``boundary_width``
of the background or of another object are *boundary*, the rest *interior*.

A binary mask (one id for every object, as a semantic model's corrections are) says where the objects are
but not where touching ones meet. Its pixels along the background are boundary all the same, but the rest
of its foreground is :data:`~..model.loss.FOREGROUND_INDEX`: interior or boundary, the loss does not say
which (it scores their summed probability), so the model's own splitting is neither taught nor untaught.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_regions
from skimage.segmentation import find_boundaries

from ..model.loss import FOREGROUND_INDEX
from ..model.outputs import BACKGROUND, BOUNDARY, DEFAULT_BOUNDARY_WIDTH, INSTANCES, INTERIOR, SEMANTIC, check_output
from .prepare import labels_to_classes


def object_regions(labels: np.ndarray) -> np.ndarray:
    """Each 4-connected region of one id numbered as its own object (int32, 0 = background)."""
    return connected_regions(np.asarray(labels), background=0, connectivity=1).astype(np.int32, copy=False)


def inner_boundary(objects: np.ndarray, width: int = DEFAULT_BOUNDARY_WIDTH) -> np.ndarray:
    """Pixels of an object within ``width`` 4-connected steps of the background or of another object."""
    boundary = np.zeros(objects.shape, dtype=bool)
    remaining = objects
    for _ in range(width):
        ring = find_boundaries(remaining, connectivity=1, mode="inner", background=0) & (remaining > 0)
        boundary |= ring
        remaining = np.where(ring, 0, remaining)
    return boundary


def is_binary(labels: np.ndarray) -> bool:
    """One id for every object (or none at all)."""
    return np.unique(labels[labels > 0]).size <= 1


def instance_target(labels: np.ndarray, boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> np.ndarray:
    """Instance (or binary) label image → background / interior / boundary class map (int64); a binary
    mask's foreground away from the background is FOREGROUND_INDEX (see the module's note)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label image must be 2-D, got shape {labels.shape}")
    objects = object_regions(labels)
    target = np.full(labels.shape, BACKGROUND, dtype=np.int64)
    target[objects > 0] = FOREGROUND_INDEX if is_binary(labels) else INTERIOR
    target[inner_boundary(objects, boundary_width)] = BOUNDARY
    return target


def labels_to_target(labels: np.ndarray, n_classes: int, output: str = SEMANTIC,
                     boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> np.ndarray:
    """The training target (int64) of a label image for a model with ``n_classes`` classes and ``output``."""
    check_output(output, n_classes, boundary_width)
    if output == INSTANCES:
        return instance_target(labels, boundary_width)
    return labels_to_classes(labels, n_classes)
