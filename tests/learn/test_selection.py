"""The rules that choose the next images from their signals."""

import numpy as np
import pytest

from napari_hybridseg.learn.selection import kernel, plan, ranks, rule_for, weighting
from napari_hybridseg.learn.signals import ImageSignals


def images(centre, n, prefix, disagreement=0.1, surprise=1.0, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    return {f"{prefix}{i}": ImageSignals(disagreement, None, surprise, np.asarray(centre, float) + rng.normal(0, spread, 4))
            for i in range(n)}


def test_with_nothing_labelled_coverage_starts_with_the_most_typical_image_of_the_largest_group():
    candidates = {**images([0, 0, 0, 0], 6, "a"), **images([5, 5, 5, 5], 2, "b", seed=1)}
    first = plan(candidates, [], "coverage", k=2)
    assert first[0].key.startswith("a")
    assert first[1].key.startswith("b")  # then the group no pick resembles yet
    assert "other unlabelled image" in first[0].describe() and "unlike any image labelled" not in first[0].describe()


def test_coverage_skips_what_the_labels_cover_and_never_picks_two_look_alikes_in_a_round():
    candidates = {**images([0, 0, 0, 0], 6, "a"), **images([5, 5, 5, 5], 2, "b", seed=1, spread=0.0),
                  **images([0, 5, 0, 5], 2, "c", seed=2, spread=0.0)}
    labelled = [np.zeros(4)]
    picks = plan(candidates, labelled, "coverage", k=3)
    assert {p.key[0] for p in picks[:2]} == {"b", "c"}  # the groups no labelled image resembles, one each
    assert "unlike any image labelled yet" in picks[0].describe()
    assert picks[2].key[0] == "a"  # b's and c's twins add nothing once b and c are chosen
    gains = [p.gain for p in picks]
    assert gains == sorted(gains, reverse=True) and len(picks) == len(candidates)


def test_the_adaptive_rule_weights_by_surprise_first_and_by_disagreement_from_five_labels():
    assert weighting("adaptive", 0) == weighting("adaptive", 4) == "surprise"
    assert weighting("adaptive", 5) == "disagreement"
    assert weighting("coverage", 0) is None
    with pytest.raises(ValueError, match="unknown selection rule"):
        weighting("best", 0)
    # two groups alike in size: a surprising one, and one whose samples disagree
    candidates = {**images([0, 0, 0, 0], 4, "s", disagreement=0.1, surprise=5.0),
                  **images([5, 5, 5, 5], 4, "d", disagreement=0.9, surprise=1.0, seed=1)}
    early = plan(candidates, [], "adaptive", k=1, n_labelled=0)
    assert early[0].key.startswith("s") and "denoises it poorly" in early[0].describe()
    late = plan(candidates, [], "adaptive", k=1, n_labelled=5)
    assert late[0].key.startswith("d") and "samples disagree" in late[0].describe()


def test_by_disagreement_the_order_is_the_scores():
    candidates = {key: ImageSignals(score, None, 1.0, np.zeros(4)) for key, score in (("x", 0.2), ("y", 0.9), ("z", 0.5))}
    assert [(p.key, p.gain) for p in plan(candidates, [], "disagreement")] == [("y", 0.9), ("z", 0.5), ("x", 0.2)]
    assert plan({}, [], "adaptive") == []


def test_the_automatic_rule_picks_by_disagreement_one_by_one_and_covers_the_folder_in_rounds():
    assert rule_for("auto", 1) == "disagreement" and rule_for("auto", 5) == rule_for("auto", 2) == "coverage"
    assert rule_for("adaptive", 1) == "adaptive"
    with pytest.raises(ValueError, match="unknown selection rule"):
        rule_for("best", 1)
    # three look-alikes whose samples disagree most, and two images unlike them
    candidates = {**images([0, 0, 0, 0], 3, "a", disagreement=0.9, spread=0.0),
                  **images([5, 5, 5, 5], 1, "b", disagreement=0.2), **images([0, 5, 0, 5], 1, "c", disagreement=0.1)}
    one = plan(candidates, [], "auto", round_size=1)
    assert [p.key for p in one[:3]] == ["a0", "a1", "a2"] and one == plan(candidates, [], "disagreement")
    round_of_three = [p.key for p in plan(candidates, [], "auto", k=3, round_size=3)[:3]]
    assert sorted(key[0] for key in round_of_three) == ["a", "b", "c"]  # one of the look-alikes, not three


def test_ranks_and_kernel():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [0.875, 0.25, 0.875, 0.5]
    similarity = kernel(np.array([[0.0, 0.0], [0.0, 0.1], [4.0, 4.0]]))
    assert np.allclose(np.diag(similarity), 1) and np.allclose(similarity, similarity.T)
    assert similarity[0, 1] > 0.9 > 0.5 > similarity[0, 2]
