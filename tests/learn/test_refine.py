"""Training faults in a background refinement: each is reported and the previous model stays active."""

import threading

import numpy as np
import pytest
import torch

from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.learn import refine
from napari_hybridseg.project import ProjectStore


@pytest.fixture
def session(tmp_path):
    rng = np.random.default_rng(0)
    images = {f"im{i}": rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for i in range(3)}
    store = ProjectStore.from_arrays(images, tmp_path / "project")
    store.update_settings(refine_steps=4, refine_batch_size=2, refine_crop=32)
    session = AnnotationSession(store, device="cpu")
    for key in images:
        mask = np.zeros((48, 48), np.uint16)
        mask[10:30, 10:30] = 1
        session.accept(key, mask)
    return session


def _a_good_round(session) -> str:
    job = session.make_refine_job()
    version = session.finish_refine(job, job.run())
    assert version is not None and session.active_version == version
    return version


def _assert_failed_and_previous_kept(session, job, result, status, previous) -> None:
    assert result.status == status and not result.ok and result.model is None
    assert "previous model stays active" in result.message
    assert session.finish_refine(job, result) is None
    assert session.active_version == previous
    assert session.store.training_log()[-1]["status"] == status


def test_a_diverging_run_stops_and_keeps_the_previous_model(session):
    previous = _a_good_round(session)
    job = session.make_refine_job()
    with torch.no_grad():
        next(job.base_model.parameters()).fill_(float("nan"))
    result = job.run()
    _assert_failed_and_previous_kept(session, job, result, "diverged", previous)
    assert "non-finite" in result.message or "nan" in result.message.lower()


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes"),
    MemoryError(),
])
def test_running_out_of_memory_keeps_the_previous_model(session, monkeypatch, error):
    previous = _a_good_round(session)
    job = session.make_refine_job()

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(refine, "finetune", exhausted)
    result = job.run()
    _assert_failed_and_previous_kept(session, job, result, "out_of_memory", previous)
    assert "smaller crop" in result.message


def test_an_unrelated_runtime_error_is_not_mistaken_for_memory(session, monkeypatch):
    job = session.make_refine_job()

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(refine, "finetune", broken)
    with pytest.raises(RuntimeError, match="shapes"):
        job.run()


def test_cancelling_mid_training_keeps_the_previous_model(session):
    previous = _a_good_round(session)
    session.store.update_settings(refine_steps=10_000)
    job = session.make_refine_job()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("result", job.run()))
    worker.start()
    job.updates.get(timeout=120)  # training has started
    job.cancel()
    worker.join(timeout=120)
    assert not worker.is_alive()
    result = outcome["result"]
    _assert_failed_and_previous_kept(session, job, result, "cancelled", previous)
    assert 0 < len(result.history) and result.history[-1].step < 10_000
