import numpy as np
import pytest

from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.project import ProjectStore


@pytest.fixture
def session(tmp_path):
    """A project of three 48² images, each accepted, with a refinement of 4 tiny steps; trains in-process."""
    rng = np.random.default_rng(0)
    images = {f"im{i}": rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for i in range(3)}
    store = ProjectStore.from_arrays(images, tmp_path / "project")
    store.update_settings(refine_steps=4, refine_batch_size=2, refine_crop=32)
    session = AnnotationSession(store, device="cpu", refine_in_child_process=False)
    for key in images:
        mask = np.zeros((48, 48), np.uint16)
        mask[10:30, 10:30] = 1
        session.accept(key, mask)
    return session


def a_good_round(session) -> str:
    job = session.make_refine_job()
    version = session.finish_refine(job, session.run_refine(job))
    assert version is not None and session.active_version == version
    return version


def failed_and_previous_kept(session, job, result, status, previous) -> None:
    assert result.status == status and not result.ok and result.model is None
    assert "previous model stays active" in result.message
    assert session.finish_refine(job, result) is None
    assert session.active_version == previous
    assert session.store.training_log()[-1]["status"] == status


@pytest.fixture
def refine_checks():
    """(a_good_round, failed_and_previous_kept): a refinement that must succeed, and the checks of one that failed."""
    return a_good_round, failed_and_previous_kept
