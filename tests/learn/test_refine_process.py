"""A refinement in a child process: the same results and faults as in-process, plus a child that dies."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

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


linux = pytest.mark.skipif(not refine_process.PAUSE_SUPPORTED, reason="pausing the training child is Linux-only")


def _state(pid: int) -> str:
    """The process's state letter from /proc ('T': stopped)."""
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


def _wait_for_state(pid: int, wanted: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (_state(pid) == "T") == (wanted == "T"):
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def busy_child():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield child
    child.kill()
    child.wait()


@linux
def test_the_child_stops_while_the_user_works_and_goes_on_once_they_are_still(busy_child):
    pause = refine_process.PauseWhileUserWorks(busy_child.pid, hold=0.3)
    try:
        pause.user_active()
        assert _wait_for_state(busy_child.pid, "T") and pause.paused
        for _ in range(4):  # the user keeps working: the child stays stopped
            time.sleep(0.1)
            pause.user_active()
            assert _state(busy_child.pid) == "T"
        assert _wait_for_state(busy_child.pid, "running") and not pause.paused
    finally:
        pause.close()


@linux
def test_closing_the_pause_lets_a_stopped_child_go_on_and_a_gone_child_is_no_error(busy_child):
    pause = refine_process.PauseWhileUserWorks(busy_child.pid, hold=60)
    pause.user_active()
    assert _wait_for_state(busy_child.pid, "T")
    pause.close()
    assert _wait_for_state(busy_child.pid, "running")
    pause.user_active()  # after close: nothing happens
    assert _state(busy_child.pid) != "T"
    busy_child.kill()
    busy_child.wait()
    gone = refine_process.PauseWhileUserWorks(busy_child.pid, hold=0.05)
    gone.user_active()
    gone.close()


@linux
def test_a_stopped_child_goes_on_when_the_viewer_dies(tmp_path):
    """The viewer starts the child, stops it and dies: the child must not stay stopped for ever."""
    pid_file = tmp_path / "child.pid"
    viewer = textwrap.dedent(f"""
        import os, signal, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "from napari_hybridseg.learn.refine_process import _continue_if_parent_dies as c; c(); "
            "import time; open({str(pid_file)!r} + '.ready', 'w').close(); time.sleep(120)"])
        while not os.path.exists({str(pid_file)!r} + '.ready'):
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGSTOP)
        open({str(pid_file)!r}, 'w').write(str(child.pid))
        time.sleep(0.5)
        os._exit(0)  # dies with the child stopped
    """)
    subprocess.run([sys.executable, "-c", viewer], check=True, timeout=120)
    pid = int(pid_file.read_text())
    try:
        assert _wait_for_state(pid, "running")
    finally:
        os.kill(pid, signal.SIGKILL)


@linux
def test_a_refinement_the_user_keeps_interrupting_still_finishes(child_session, refine_checks, monkeypatch):
    pauses = []
    real = refine_process.PauseWhileUserWorks

    class Recorded(real):
        def user_active(self):
            super().user_active()
            pauses.append(self.paused)

    monkeypatch.setattr(refine_process, "PauseWhileUserWorks", Recorded)
    job = child_session.make_refine_job()
    job.user_active()  # before the child trains: nothing to pause
    done = threading.Event()

    def user():  # a move every 0.3 s: each pauses the training for a moment
        _first_update(job)
        while not done.is_set():
            job.user_active()
            time.sleep(0.3)

    threading.Thread(target=user, daemon=True).start()
    result = child_session.run_refine(job)
    done.set()
    assert result.ok, result.message
    assert pauses and all(pauses)  # each move stopped (or kept stopped) the training
    job.user_active()  # after the run: nothing to pause
