"""A refinement in a child process: the same results and faults as in-process, plus a child that dies."""

import subprocess
import threading

import pytest
import torch

from napari_hybridseg.learn import refine_process
from napari_hybridseg.model.onnx_engine import default_cache_dir, weights_key


@pytest.fixture
def child_session(session):
    session.refine_in_child_process = True
    return session


def test_a_refinement_in_a_child_process_registers_a_model_and_its_onnx_graph(child_session, refine_checks):
    a_good_round, _ = refine_checks
    job = child_session.make_refine_job()
    result = child_session.run_refine(job)
    assert result.ok and result.history, result.message
    assert [e.step for e in result.history] == [e.step for e in list(job.updates.queue)]  # relayed to the viewer
    version = child_session.finish_refine(job, result)
    assert child_session.active_version == version
    assert (default_cache_dir() / f"{weights_key(result.model)}.onnx").is_file()  # the viewer need not export it
    assert child_session.trained_on() == {"im0", "im1", "im2"}
    # and it refines onwards from there
    assert a_good_round(child_session) != version


def test_cancelling_the_child_keeps_the_previous_model(child_session, refine_checks):
    a_good_round, failed_and_previous_kept = refine_checks
    previous = a_good_round(child_session)
    child_session.store.update_settings(refine_steps=100_000)
    job = child_session.make_refine_job()
    threading.Thread(target=lambda: (_first_update(job), job.cancel()), daemon=True).start()
    result = child_session.run_refine(job)
    failed_and_previous_kept(child_session, job, result, "cancelled", previous)
    assert result.history and result.history[-1].step < 100_000


def test_a_child_killed_mid_training_is_reported_and_the_previous_model_kept(child_session, refine_checks,
                                                                             monkeypatch):
    a_good_round, failed_and_previous_kept = refine_checks
    previous = a_good_round(child_session)
    child_session.store.update_settings(refine_steps=100_000)
    job = child_session.make_refine_job()
    children, popen = [], subprocess.Popen

    def remembered(*args, **kwargs):
        children.append(popen(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(refine_process.subprocess, "Popen", remembered)
    threading.Thread(target=lambda: (_first_update(job), children[0].kill()), daemon=True).start()
    result = child_session.run_refine(job)
    failed_and_previous_kept(child_session, job, result, "crashed", previous)
    assert "killed by SIGKILL" in result.message


def _first_update(job, timeout: float = 120) -> None:
    job.updates.get(timeout=timeout)  # the child is training now


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_gpu_memory_is_given_back_after_a_refinement(session):
    """In-process: the allocator's memory returns to what it was; in a child: the whole GPU's free memory does."""
    session.device = torch.device("cuda")
    torch.cuda.synchronize()
    allocated, (free_before, _) = torch.cuda.memory_allocated(), torch.cuda.mem_get_info()
    job = session.make_refine_job()
    assert session.run_refine(job).ok
    assert torch.cuda.memory_allocated() == allocated

    session.refine_in_child_process = True
    job = session.make_refine_job()
    assert session.run_refine(job).ok
    free_after, _ = torch.cuda.mem_get_info()
    assert free_after >= free_before - 64 * 2**20  # the child's context and caches are gone with it
