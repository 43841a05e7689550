"""Object scores on hand-made label images whose answers are worked out by hand."""

import numpy as np
import pytest

from napari_hybridseg.learn.instances import object_scores


def two_squares() -> np.ndarray:
    true = np.zeros((4, 8), dtype=np.uint16)
    true[0:2, 0:2] = 1  # area 4
    true[0:2, 4:6] = 2  # area 4
    return true


def test_one_match_one_miss_one_extra():
    pred = np.zeros((4, 8), dtype=np.uint16)
    pred[0:2, 0:2] = 5  # object 1 exactly: IoU 1
    pred[0:2, 5:8] = 7  # area 6, 2 pixels on object 2: IoU 2 / 8
    pred[3, 7] = 9  # on nothing
    scores = object_scores(two_squares(), pred)
    assert (scores.n_true, scores.n_pred, scores.matched, scores.count_error) == (2, 3, 1, 1)
    assert scores.f1 == pytest.approx(2 * 1 / (2 + 3))
    # AJI: object 1 with 5 (4 / 4), object 2 with 7 (2 / 8), 9 unused (+1 to the unions)
    assert scores.aji == pytest.approx((4 + 2) / (4 + 8 + 1))


def test_a_merge_matches_one_of_the_two_at_iou_one_half():
    true = np.zeros((2, 4), dtype=np.uint16)
    true[:, 0:2], true[:, 2:4] = 1, 2
    pred = np.ones((2, 4), dtype=np.uint16)  # the two as one: IoU 4 / 8 with each
    scores = object_scores(true, pred)
    assert (scores.matched, scores.count_error) == (1, -1)
    assert scores.f1 == pytest.approx(2 / 3)
    assert scores.aji == pytest.approx((4 + 4) / (8 + 8))  # the merged object counted with both


def test_perfect_and_empty_cases():
    true = two_squares()
    relabelled = np.where(true == 1, 3, np.where(true == 2, 1, 0))
    assert object_scores(true, relabelled).to_dict() == {
        "f1": 1.0, "aji": 1.0, "n_true": 2, "n_pred": 2, "matched": 2, "count_error": 0}
    empty = np.zeros_like(true)
    assert object_scores(empty, empty)[:2] == (1.0, 1.0)
    assert object_scores(true, empty)[:2] == (0.0, 0.0)
    assert object_scores(empty, true)[:2] == (0.0, 0.0)


def test_below_the_threshold_is_no_match():
    true = np.zeros((1, 10), dtype=np.uint16)
    true[0, 0:4] = 1
    pred = np.zeros_like(true)
    pred[0, 2:6] = 1  # IoU 2 / 6
    scores = object_scores(true, pred)
    assert scores.matched == 0 and scores.f1 == 0.0
    assert scores.aji == pytest.approx(2 / 6)


def test_bad_inputs_say_why():
    with pytest.raises(ValueError, match="differ in shape"):
        object_scores(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="integer ids"):
        object_scores(np.zeros((2, 2), float), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="negative"):
        object_scores(np.zeros((2, 2), int), -np.ones((2, 2), int))
