"""Training faults in a background refinement: each is reported and the previous model stays active."""

import threading

import numpy as np
import pytest
import torch

from napari_hybridseg.learn import refine


@pytest.mark.parametrize("in_child_process", [False, True], ids=["in-process", "child process"])
def test_a_diverging_run_stops_and_keeps_the_previous_model(session, refine_checks, in_child_process):
    a_good_round, failed_and_previous_kept = refine_checks
    previous = a_good_round(session)
    session.refine_in_child_process = in_child_process
    job = session.make_refine_job()
    with torch.no_grad():
        next(job.base_model.parameters()).fill_(float("nan"))
    result = session.run_refine(job)
    failed_and_previous_kept(session, job, result, "diverged", previous)
    assert "non-finite" in result.message or "nan" in result.message.lower()


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes"),
    MemoryError(),
])
def test_running_out_of_memory_keeps_the_previous_model(session, monkeypatch, error, refine_checks):
    a_good_round, failed_and_previous_kept = refine_checks
    previous = a_good_round(session)
    job = session.make_refine_job()

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(refine, "finetune", exhausted)
    result = job.run()
    failed_and_previous_kept(session, job, result, "out_of_memory", previous)
    assert "smaller crop" in result.message


def test_an_unrelated_runtime_error_is_not_mistaken_for_memory(session, monkeypatch):
    job = session.make_refine_job()

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(refine, "finetune", broken)
    with pytest.raises(RuntimeError, match="shapes"):
        job.run()


def test_cancelling_mid_training_keeps_the_previous_model(session, refine_checks):
    a_good_round, failed_and_previous_kept = refine_checks
    previous = a_good_round(session)
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
    failed_and_previous_kept(session, job, result, "cancelled", previous)
    assert 0 < len(result.history) and result.history[-1].step < 10_000
