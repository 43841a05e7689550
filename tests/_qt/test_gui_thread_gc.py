"""Cyclic garbage made by a worker thread is collected on the GUI thread (Qt objects must die there)."""

import gc
import threading

from napari_hybridseg._qt.gui_thread_gc import GuiThreadGarbageCollector


class Cycle:
    def __init__(self, finalised_on: list):
        self.me, self.finalised_on = self, finalised_on

    def __del__(self):
        self.finalised_on.append(threading.current_thread() is threading.main_thread())


def drop_a_cycle_then_allocate(finalised_on: list, kept: list) -> None:
    Cycle(finalised_on)
    kept.extend([i] for i in range(100_000))  # far past the threshold of an automatic collection


def test_cyclic_garbage_of_a_worker_thread_is_collected_on_the_gui_thread(qtbot):
    assert gc.isenabled()
    collector = GuiThreadGarbageCollector()
    try:
        assert not gc.isenabled()
        finalised_on: list = []
        kept: list = []  # the worker's new objects stay alive, as a worker's results do
        worker = threading.Thread(target=drop_a_cycle_then_allocate, args=(finalised_on, kept))
        worker.start()
        worker.join()
        assert finalised_on == [], "nothing was collected in the worker thread"
        qtbot.waitUntil(lambda: bool(finalised_on), timeout=10_000)
        assert finalised_on == [True]
    finally:
        collector.stop()
    assert gc.isenabled()


def test_automatic_collection_comes_back_when_the_dock_goes(qtbot):
    from qtpy.QtWidgets import QWidget

    dock = QWidget()
    GuiThreadGarbageCollector(dock)
    assert not gc.isenabled()
    dock.deleteLater()
    qtbot.waitUntil(gc.isenabled, timeout=5_000)
