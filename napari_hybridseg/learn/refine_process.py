"""Run a :class:`RefineJob` in a child process, so training never competes with the viewer.

In the viewer's own process, a training thread shares Python's GIL with the GUI
thread: every stretch of Python the trainer runs (imports, the optimiser, data
preparation) is a stretch the viewer cannot paint, and lowering the training
thread's priority makes it worse (the GUI then waits for a GIL held by a thread
the scheduler keeps off the CPU). A child process has its own interpreter, runs
at a lower CPU priority, and gives all its memory back (on a GPU too) when it ends.

The parent side looks like ``job.run()``: step logs arrive in ``job.updates``,
``job.cancel()`` stops the child, and the result is a :class:`RefineResult`. The
child also exports the refined model's ONNX graph into the cache, so the viewer
does not pay for the export when it first predicts with the new version.

The child is ``python -m napari_hybridseg.learn.refine_process`` rather than a
``multiprocessing`` process: spawning would re-run the user's main script in the
child (a script that opens napari without an ``if __name__ == "__main__"`` guard
would open a second viewer), and forking would copy the viewer's threads. The
job goes to the child as a pickle on its stdin — data this process made, never
a file a user handed in; the child answers with JSON lines on a private pipe and
takes ``cancel`` (or the end of its stdin, when the viewer dies) on stdin.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

from .refine import RefineJob, RefineResult
from .train import StepLog

log = logging.getLogger(__name__)

#: Linux nice value of the training process: it gets the cores the viewer leaves idle.
CHILD_NICENESS = 10
#: seconds a CPU training stays stopped after the user's last move or stroke
USER_PAUSE_S = 0.15
#: Linux only: there a stopped child is sure to be continued if the viewer dies (see _continue_if_parent_dies)
PAUSE_SUPPORTED = sys.platform.startswith("linux")
_CANCEL = b"cancel\n"


def run_in_child_process(job: RefineJob, niceness: int = CHILD_NICENESS) -> RefineResult:
    """Train ``job`` in a child process (call from a worker thread); never raises for training faults
    or a child that dies."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hybridseg-refine-") as folder:
        out, errors = Path(folder) / "refined.safetensors", Path(folder) / "stderr.txt"
        report_read, report_write = os.pipe()
        with open(errors, "wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", __name__, str(out), str(report_write), str(niceness)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=(report_write,),
            )
        os.close(report_write)
        pause = PauseWhileUserWorks(child.pid) if job.device.type == "cpu" and PAUSE_SUPPORTED else None
        with os.fdopen(report_read, "rb") as reports:
            _send(child.stdin, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            watcher = threading.Thread(target=_forward_cancel, args=(job, child), daemon=True)
            watcher.start()
            history: list[StepLog] = []

            def training_started() -> None:  # by now the child has asked to be continued if this process dies
                job._on_user_active = pause.user_active if pause is not None else None

            try:
                outcome = _relay(job, reports, history, training_started)
            finally:
                job._on_user_active = None
                if pause is not None:
                    pause.close()  # the child runs on, and is not yet reaped, so its pid is still its own
        _close(child.stdin)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        watcher.join()
        result = _result(outcome, out, history, child.returncode, errors)
    result.seconds = time.perf_counter() - start
    return result


class PauseWhileUserWorks:
    """Stops the training child (SIGSTOP) when the user moves or draws, and lets it go on (SIGCONT) once the
    user has been still for ``hold`` seconds.

    Its low CPU priority is not enough on a machine with two cores: a move's repaint under software OpenGL
    wants both (the GUI thread, the X server, the rasteriser's threads), and the training process holds one of
    them for the length of its time slice. Made only where ``PAUSE_SUPPORTED`` (Linux).
    """

    def __init__(self, pid: int, hold: float = USER_PAUSE_S):
        self._pid, self._hold = pid, hold
        self._changed = threading.Condition()
        self._resume_at: float | None = None  # set while the child is stopped
        self._closed = False
        self._resumer = threading.Thread(target=self._resume_when_due, daemon=True)
        self._resumer.start()

    @property
    def paused(self) -> bool:
        return self._resume_at is not None

    def user_active(self) -> None:
        with self._changed:
            if self._closed:
                return
            if self._resume_at is None:
                self._signal(signal.SIGSTOP)
            self._resume_at = time.monotonic() + self._hold
            self._changed.notify()

    def close(self) -> None:
        """Let the child go on for good."""
        with self._changed:
            self._closed = True
            self._resume()
            self._changed.notify()
        self._resumer.join()

    def _resume_when_due(self) -> None:
        with self._changed:
            while not self._closed:
                delay = None if self._resume_at is None else self._resume_at - time.monotonic()
                if delay is not None and delay <= 0:
                    self._resume()
                else:
                    self._changed.wait(delay)

    def _resume(self) -> None:
        if self._resume_at is not None:
            self._signal(signal.SIGCONT)
            self._resume_at = None

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self._pid, signum)
        except ProcessLookupError:  # the child has already ended
            pass


def _send(stream: IO[bytes], payload: bytes) -> None:
    try:
        stream.write(len(payload).to_bytes(8, "little") + payload)
        stream.flush()
    except OSError:  # the child is already gone: its exit code tells why
        pass


def _close(stream: IO[bytes]) -> None:
    try:
        stream.close()
    except OSError:
        pass


def _forward_cancel(job: RefineJob, child: subprocess.Popen) -> None:
    while child.poll() is None:
        if job._cancel.wait(0.1):
            _send(child.stdin, _CANCEL)
            return


def _relay(job: RefineJob, reports: IO[bytes], history: list[StepLog],
           on_first_step: Callable[[], None] = lambda: None) -> dict[str, Any] | None:
    """Forward the child's step logs until it reports its outcome (None: it ended without one)."""
    for line in reports:
        message = json.loads(line)
        if "step" in message:
            if not history:
                on_first_step()
            entry = StepLog(**message)
            history.append(entry)
            job.updates.put(entry)
        else:
            return message
    return None


def _result(outcome: dict[str, Any] | None, out: Path, history: list[StepLog], exitcode: int | None,
            errors: Path) -> RefineResult:
    if outcome is None:
        message = _death_message(exitcode)
        log.warning("%s; its last words: %s", message, errors.read_text(errors="replace")[-2000:])
        return RefineResult(None, None, history, "crashed", message)
    if outcome["status"] != "done":
        return RefineResult(None, None, history, outcome["status"], outcome["message"])
    from ..model.checkpoint import CheckpointError, load_checkpoint

    try:
        model, metadata = load_checkpoint(out)
    except CheckpointError as error:
        return RefineResult(None, None, history, "crashed",
                            f"the refined model could not be read back ({error}); the previous model stays active")
    return RefineResult(model, metadata, history, "done", outcome["message"])


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            how += " (often the system running out of memory)"
    else:
        how = f"stopped unexpectedly (exit code {exitcode})"
    return f"the training process {how}; the previous model stays active"


# ---------------------------------------------------------------------------- the child
def _continue_if_parent_dies() -> None:
    """Ask Linux to send this process SIGCONT when the thread that started it ends: a child stopped by
    :class:`PauseWhileUserWorks` then goes on, finds its stdin closed and cancels itself, even if the
    viewer died while it was stopped."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGCONT), 0, 0, 0)


def _child_main(out: str, report_fd: int, niceness: int) -> None:
    if PAUSE_SUPPORTED:
        _continue_if_parent_dies()
    if niceness > 0 and hasattr(os, "nice"):
        os.nice(niceness)
    reports = os.fdopen(report_fd, "w", buffering=1)
    size = int.from_bytes(sys.stdin.buffer.read(8), "little")
    job: RefineJob = pickle.loads(sys.stdin.buffer.read(size))  # written by our parent, see the module doc
    threading.Thread(target=_cancel_on_request, args=(job,), daemon=True).start()
    job.updates = _Reporter(reports)
    try:
        result = job.run()
        if result.ok:
            _save(result, Path(out))
        outcome = {"status": result.status, "message": result.message}
    except Exception as error:  # an unexpected fault: say what it was rather than die silently
        outcome = {"status": "failed", "message": f"refinement failed: {error}; the previous model stays active"}
        log.exception("refinement failed")
    reports.write(json.dumps(outcome) + "\n")
    reports.close()


def _cancel_on_request(job: RefineJob) -> None:
    """``cancel`` on stdin, or its end (the viewer has gone), stops the training."""
    sys.stdin.buffer.readline()
    job.cancel()


class _Reporter:
    """``put`` of step logs as JSON lines: what the training loop calls on ``job.updates``."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def put(self, entry: StepLog) -> None:
        self.stream.write(json.dumps(entry.to_dict()) + "\n")


def _save(result: RefineResult, out: Path) -> None:
    from ..model.checkpoint import save_checkpoint
    from ..model.onnx_engine import cache_graph, default_cache_dir, onnxruntime_available

    save_checkpoint(out, result.model, result.metadata)
    if onnxruntime_available():
        try:
            cache_graph(result.model, default_cache_dir())
        except Exception as error:  # the viewer exports it itself when it first predicts
            log.info("could not export the refined model's ONNX graph: %s", error)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _child_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
