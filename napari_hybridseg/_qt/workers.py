"""The dock's background work: what each worker runs (off the GUI thread), and the pool that tracks them.

Workers whose ``errored`` signal the dock handles are made with ``_ignore_errors=True``: otherwise napari's
``create_worker`` also re-raises the error in Qt's event loop, an unhandled exception on top of the message."""

from __future__ import annotations

import functools
import gc
import sys
import threading

from qtpy.QtCore import QThreadPool

from ..annotation import AnnotationSession


def one_torch_thread(only_if_loaded: bool = False) -> None:
    """Worker threads predict on one torch thread (the setting is per OS thread): with
    a refinement on the other core, more would starve the viewer's own thread.
    ``only_if_loaded`` is for work that may need no torch at all (predicting from a
    cached ONNX graph): importing it costs over a second."""
    if only_if_loaded and "torch" not in sys.modules:
        return
    import torch

    torch.set_num_threads(1)


def predict_mask(session: AnnotationSession, key: str):
    one_torch_thread(only_if_loaded=True)
    return session.mask_for(key)


def refine_and_register(session: AnnotationSession, cancel: threading.Event):
    """Make the job (it reads the accepted images and loads the base model) and yield it to the viewer,
    train it (in a child process), register the new version and load it for prediction: all off the GUI thread."""
    job = session.make_refine_job(cancel=cancel)
    yield job
    result = session.run_refine(job)
    version = session.finish_refine(job, result)
    if version is not None:
        one_torch_thread()
        session.segmenter(version)
    return result, version


def refresh_all(session: AnnotationSession):
    one_torch_thread()
    yield from session.refresh_predictions()


def prefetch_likely(session: AnnotationSession):
    one_torch_thread(only_if_loaded=True)
    yield from session.refresh_predictions(session.prefetch_keys())


def score_unaccepted(session: AnnotationSession):
    one_torch_thread()
    yield from session.score_unaccepted()


def disagreement_map(session: AnnotationSession, key: str):
    one_torch_thread()
    return key, session.disagreement_map(key)


def export_steps(exporter, path, items):
    """Run an exporter of ``napari_hybridseg.export``, yielding once per image; returns why it failed (a
    bad target, a full disk), or None: a worker's exception would reach the user as a traceback."""
    try:
        yield from exporter(path, items)
    except (OSError, ValueError) as err:
        return str(err)
    return None


def rank_start_models(session: AnnotationSession):
    """The shipped models ranked by how well they know the project's images (reads a few, loads each model)."""
    one_torch_thread()
    return session.rank_start_models()


def check_files(session: AnnotationSession):
    yield from session.check_files()


@functools.cache  # once per process, and once more when torch has been imported
def _freeze_startup_objects(torch_loaded: bool) -> None:
    """Exempt everything alive now (napari, Qt, torch: millions of objects) from Python's cyclic garbage
    collector. Otherwise each full collection walks all of them, holding the GIL for 100–200 ms: a
    visible freeze whichever thread triggers it. Objects made later are still collected."""
    gc.freeze()


def freeze_loaded_modules() -> None:
    _freeze_startup_objects("torch" in sys.modules)


class WorkerPool:
    """The running workers, each with the event that cancels it (if any)."""

    def __init__(self):
        self.running: dict = {}

    def start(self, worker, cancel: threading.Event | None = None):
        running = self.running
        running[worker] = cancel
        worker.finished.connect(lambda: running.pop(worker, None))
        worker.start()
        return worker

    def abandon(self) -> None:
        """The dock is gone (its viewer closed): stop the work, whose results would reach deleted widgets."""
        for worker, cancel in list(self.running.items()):
            worker.signals.blockSignals(True)
            worker.quit()
            if cancel is not None:
                cancel.set()

    def stop_all(self, wait_ms: int = 60_000) -> None:
        """Ask every worker to stop and wait for napari's thread pool to drain."""
        for worker, cancel in list(self.running.items()):
            worker.quit()
            if cancel is not None:
                cancel.set()
        QThreadPool.globalInstance().waitForDone(wait_ms)  # napari's workers run in the global pool
