"""Instance labels → background / interior / boundary targets, and back to objects."""

import numpy as np
import pytest

from napari_hybridseg.data.targets import inner_boundary, instance_target, labels_to_target
from napari_hybridseg.model.loss import FOREGROUND_INDEX
from napari_hybridseg.model.outputs import BACKGROUND, BOUNDARY, INTERIOR
from napari_hybridseg.model.split import count_objects, labels_from_classes, split_instances


def touching_pair() -> np.ndarray:
    labels = np.zeros((9, 14), dtype=np.uint16)
    labels[1:8, 1:7] = 1
    labels[1:8, 7:13] = 2  # shares the column boundary 6 | 7 with object 1
    return labels


def test_boundary_runs_along_the_background_and_between_touching_objects():
    target = instance_target(touching_pair(), boundary_width=1)
    assert (target[0] == BACKGROUND).all()
    assert (target[1, 1:13] == BOUNDARY).all()  # the top rim
    assert (target[4, 6:8] == BOUNDARY).all()  # where the two touch
    assert (target[2:7, 2:6] == INTERIOR).all() and (target[2:7, 8:12] == INTERIOR).all()
    wide = instance_target(touching_pair(), boundary_width=2)
    assert (wide[4, 5:9] == BOUNDARY).all() and (wide[3:6, 3:5] == INTERIOR).all()


def test_the_image_edge_is_not_a_boundary():
    labels = np.ones((6, 6), dtype=np.uint16)
    assert not inner_boundary(labels, 2).any()


def test_binary_masks_leave_interior_and_boundary_open_away_from_the_background():
    binary = (touching_pair() > 0).astype(np.uint8)
    target = instance_target(binary, boundary_width=1)
    assert (target[1, 1:13] == BOUNDARY).all()
    assert (target[2:7, 2:12] == FOREGROUND_INDEX).all()  # where the two meet is not known
    assert (target[0] == BACKGROUND).all()


def test_one_id_on_separate_regions_is_separate_objects():
    labels = np.zeros((5, 12), dtype=np.uint16)
    labels[:, 0:5] = 3
    labels[:, 7:12] = 3
    labels[0, 0] = 4  # a second id: instance labels, not binary
    target = instance_target(labels, boundary_width=1)
    assert (target[1:4, 1:4] == INTERIOR).all() and (target[1:4, 8:11] == INTERIOR).all()


def test_semantic_targets_are_unchanged():
    assert (labels_to_target(touching_pair(), 2) == (touching_pair() > 0)).all()
    with pytest.raises(ValueError, match="3 classes"):
        labels_to_target(touching_pair(), 2, "instances")
    with pytest.raises(ValueError, match="unknown output"):
        labels_to_target(touching_pair(), 2, "cells")


def test_splitting_the_target_gives_back_the_objects():
    labels = touching_pair()
    objects = split_instances(instance_target(labels, boundary_width=2))
    assert count_objects(objects) == 2
    for value in (1, 2):
        assert len(np.unique(objects[labels == value])) == 1
    assert ((objects > 0) == (labels > 0)).all()


def test_a_foreground_with_no_interior_is_an_object_of_its_own():
    classes = np.zeros((6, 10), dtype=np.uint8)
    classes[1:5, 1:5] = BOUNDARY
    classes[2:4, 2:4] = INTERIOR
    classes[1:3, 7:9] = BOUNDARY  # too small for any interior
    objects = split_instances(classes)
    assert count_objects(objects) == 2 and (objects[1:3, 7:9] > 0).all()
    assert count_objects(split_instances(np.where(classes > 0, BOUNDARY, 0))) == 2


def test_label_images_follow_the_model_output():
    classes = instance_target(touching_pair(), 2).clip(min=0).astype(np.uint8)
    assert count_objects(labels_from_classes(classes, {"n_classes": 3, "output": "instances"})) == 2
    binary = (touching_pair() > 0).astype(np.uint8)
    semantic = labels_from_classes(binary, {"n_classes": 2})  # an old checkpoint names no output
    assert semantic.dtype == np.uint16 and count_objects(semantic) == 1
    with pytest.raises(ValueError, match="3 classes"):
        labels_from_classes(classes, {"n_classes": 2, "output": "instances"})


def test_crops_of_an_instances_model_carry_the_whole_image_target():
    from napari_hybridseg.data.crops import CropSampler
    from napari_hybridseg.data.datasets import Sample

    labels = np.zeros((64, 64), dtype=np.uint16)
    labels[:, :32], labels[:, 32:] = 1, 2  # two objects filling the image, touching down the middle
    sampler = CropSampler([Sample("a", np.zeros((64, 64), np.uint8), labels)], model_channels=1, n_classes=3,
                          crop_size=16, output="instances")
    _, masks = sampler.batch(16)
    assert set(np.unique(masks.numpy())) <= {INTERIOR, BOUNDARY}  # a crop's edge is no boundary
    assert (sampler.masks[0][:, 30:34] == BOUNDARY).all() and (sampler.masks[0][:, :30] == INTERIOR).all()
