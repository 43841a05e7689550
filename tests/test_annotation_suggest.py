"""Which image to label next: AnnotationSession's disagreement ranking and suggestion."""

import numpy as np
import pytest
import torch

from napari_hybridseg.annotation import RANKING_SCORER, AnnotationSession
from napari_hybridseg.model.checkpoint import load_checkpoint


@pytest.fixture
def session(tiny_session) -> AnnotationSession:
    return tiny_session


def score_all(session: AnnotationSession) -> dict[str, float]:
    return {p.key: p.score for p in session.score_unaccepted()}


def accept_empty(session: AnnotationSession, key: str) -> None:
    session.accept(key, np.zeros(session.store.read_image(key).shape[:2], np.uint8))


def add_perturbed_version(session: AnnotationSession, tiny_checkpoint) -> str:
    """Register (and activate) a copy of the tiny model with noise added to its weights."""
    model, meta = load_checkpoint(tiny_checkpoint)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * p.std().nan_to_num(0) * torch.randn(p.shape, generator=generator))
    return session.store.add_model_version(model, meta, parent=session.active_version, note="perturbed",
                                           activate=True)


def test_without_scores_the_next_unaccepted_image_is_suggested(session):
    keys = session.keys()
    session.go(keys[1])
    accept_empty(session, keys[2])
    assert session.ranking() == []
    assert session.suggest_next() == keys[3]  # after the current one, skipping the accepted one
    for key in keys[3:]:
        accept_empty(session, key)
    assert session.suggest_next() == keys[0]  # wraps around
    accept_empty(session, keys[0])
    assert session.suggest_next() == keys[1]  # the current image, when nothing else is left
    accept_empty(session, keys[1])
    assert session.suggest_next() is None


def test_by_default_the_rule_follows_the_rounds_coverage_in_rounds_of_five_disagreement_one_by_one(session):
    assert (session.settings["suggest_by"], session.settings["refine_every"]) == ("auto", 5)
    list(session.score_unaccepted())
    in_rounds = [(p.key, p.reasons) for p in session.suggestions()]
    session.store.update_settings(suggest_by="coverage")
    assert [(p.key, p.reasons) for p in session.suggestions()] == in_rounds
    session.store.update_settings(suggest_by="auto", refine_every=1)
    one_by_one = [(p.key, p.gain) for p in session.suggestions()]
    session.store.update_settings(suggest_by="disagreement")
    assert [(p.key, p.gain) for p in session.suggestions()] == one_by_one != [(key, None) for key, _ in in_rounds]


def test_by_disagreement_the_images_rank_highest_first(session):
    session.store.update_settings(suggest_by="disagreement")
    keys = session.keys()
    accept_empty(session, keys[0])
    progress = list(session.score_unaccepted())
    assert [p.key for p in progress] == keys[1:]
    assert [(p.done, p.total) for p in progress] == [(i, len(keys) - 1) for i in range(1, len(keys))]

    ranking = session.ranking()
    assert sorted(ranking) == sorted((p.key, p.score) for p in progress)
    scores = [score for _, score in ranking]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert all(score > 0 for score in scores)
    assert session.suggest_next() == ranking[0][0]

    # accepting the top image drops it from the ranking; the next suggestion is the runner-up
    accept_empty(session, ranking[0][0])
    assert session.ranking() == ranking[1:]
    assert session.suggest_next() == ranking[1][0]


def test_by_coverage_the_suggestions_cover_the_folder_and_say_why(session):
    session.store.update_settings(suggest_by="adaptive")
    keys = session.keys()
    accept_empty(session, keys[0])
    list(session.score_unaccepted())
    assert session.scorer().cached(keys[0]) is not None  # the accepted image's features: what the labels cover

    picks = session.suggestions()
    assert sorted(p.key for p in picks) == sorted(keys[1:])
    gains = [p.gain for p in picks]
    assert gains == sorted(gains, reverse=True)  # each pick adds no more than the one before
    assert all(p.reasons for p in picks)
    assert session.suggest_next() == picks[0].key
    session.store.update_settings(after_accept="informative")
    move = session.after_accept(keys[0])
    assert move.key == picks[0].key and picks[0].describe() in move.why

    accept_empty(session, picks[0].key)  # the labels now cover it and what resembles it: the plan is made again
    again = session.suggestions()
    assert picks[0].key not in [p.key for p in again] and len(again) == len(picks) - 1
    assert session.suggest_next() == again[0].key


def test_scored_images_come_before_unscored_ones_and_drafts_last(session):
    keys = session.keys()
    scores = dict(session.ranking())
    assert not scores
    stopped = session.score_unaccepted()
    first = next(stopped)
    stopped.close()  # a cancelled worker: nothing more is scored
    assert [key for key, _ in session.ranking()] == [first.key]
    session.go(first.key)
    assert session.suggest_next() == first.key  # the only scored image wins over the unscored ones

    score_all(session)
    ordered = [key for key, _ in session.ranking()]
    session.save_draft(ordered[0], np.ones((64, 64), np.uint8))  # the user is editing the top image
    assert session.suggest_next() == ordered[1]
    for key in ordered[1:]:
        accept_empty(session, key)
    assert session.suggest_next() == ordered[0]  # a draft, when nothing else is left
    assert set(keys) == set(ordered)


def test_a_new_model_version_is_scored_afresh_and_so_is_a_rollback(session, tiny_checkpoint):
    first = score_all(session)
    assert session.scorer().model_version == "v0001"

    second_version = add_perturbed_version(session, tiny_checkpoint)
    assert session.ranking() == []  # no score of another version is reused
    keys = session.keys()
    session.go(keys[0])
    assert session.suggest_next() == keys[1]
    second = score_all(session)
    assert session.scorer().model_version == second_version
    assert second.keys() == first.keys() and second != first

    session.set_active("v0001")  # roll back
    assert session.ranking() == []
    assert score_all(session) == first  # each image's noise is seeded by its content: the same scores


def test_the_ranking_scores_a_crop_and_the_map_covers_the_whole_image(session):
    key = session.keys()[0]
    assert session.scoring == RANKING_SCORER
    small = AnnotationSession(session.store, "cpu", scoring={**RANKING_SCORER, "max_pixels": 16 * 16})
    list(small.score_unaccepted())
    crop_map = small.scorer().cached(key).map
    assert crop_map.shape == (64, 64)
    assert 0 < np.count_nonzero(crop_map) <= 16 * 16

    whole = small.disagreement_map(key)
    assert whole.shape == (64, 64) and whole.dtype == np.float32
    assert np.count_nonzero(whole) > 16 * 16

    # an image within max_pixels: the map is the ranking's own, taken from its cache
    list(session.score_unaccepted())
    assert session.disagreement_map(key) is session.scorer().cached(key).map
