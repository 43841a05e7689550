"""Navigation without waiting: what AnnotationSession predicts ahead, and refreshing past unreadable files."""

import numpy as np


def test_the_likely_next_images_are_prefetched_until_their_masks_are_ready(tiny_session):
    session = tiny_session
    keys = session.keys()
    session.go(keys[2])
    assert session.prefetch_keys() == [keys[3], keys[1]]  # next (also the suggestion), previous
    session.go(keys[0])
    assert session.prefetch_keys() == [keys[1]]
    session.go(keys[-1])
    assert session.prefetch_keys() == [keys[0], keys[-2]]  # the suggestion wraps around

    session.go(keys[2])
    list(session.refresh_predictions([keys[3]]))
    session.accept(keys[1], np.zeros(session.store.read_image(keys[1]).shape[:2], np.uint8))
    assert session.prefetch_keys() == []  # next (the suggestion too) is ready, previous accepted


def test_refreshing_skips_an_image_that_became_unreadable(tiny_session):
    session = tiny_session
    keys = session.keys()
    (session.store.images_folder / session.store.record(keys[1]).file).write_bytes(b"not an image any more")
    refreshed = list(session.refresh_predictions())
    assert refreshed == [k for k in keys if k != keys[1]]
    assert session.is_stale(keys[1])  # opening it says why


def test_a_move_not_persisted_is_where_the_session_is_and_is_written_when_saved(tiny_session):
    from napari_hybridseg.project import ProjectStore

    session = tiny_session
    keys = session.keys()
    session.go(keys[1])
    assert session.step(+1, persist=False) == keys[2]
    assert session.current() == keys[2] and session.step(+1, persist=False) == keys[3]  # steps from where it is
    reopened = lambda: ProjectStore.open(session.store.images_folder, session.store.project_dir).position  # noqa: E731
    assert reopened() == keys[1]  # nothing written yet
    session.save_position()
    assert reopened() == keys[3]
