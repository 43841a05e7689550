"""The refinement panel: fine-tune on every accepted mask in the background, with progress, a live loss
curve (the last round's, from the project's log, when a project is reopened) and a cancel button."""

from __future__ import annotations

import threading
from typing import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from ..annotation import AnnotationSession
from .loss_plot import LossPlot
from .progress_bar import ProgressBar
from .workers import WorkerPool, refine_and_register

POLL_MS = 150  # how often the training's reports are drawn


class RefinePanel(QGroupBox):
    """``new_version`` is emitted with the version a refinement registered and made active."""

    new_version = Signal(str)
    every_changed = Signal(int)  # the user set how many accepted images a round is

    def __init__(self, pool: WorkerPool, say: Callable[..., None], parent: QWidget | None = None):
        super().__init__("Refinement", parent)
        self.pool, self.say = pool, say
        self.session: AnnotationSession | None = None
        self.worker = None
        self.job = None
        self.cancel_event = threading.Event()  # set to stop the refinement in progress
        layout = QVBoxLayout(self)
        every = QHBoxLayout()
        every.addWidget(QLabel("Refine after every"))
        self.every = QSpinBox()
        self.every.setRange(1, 1000)
        self.every.setValue(5)
        self.every.valueChanged.connect(self._every_changed)
        every.addWidget(self.every)
        every.addWidget(QLabel("accepted images"))
        every.addStretch(1)
        layout.addLayout(every)
        buttons = QHBoxLayout()
        self.refine_button = QPushButton("Refine now")
        self.refine_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.refine_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = ProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.loss_plot = LossPlot()
        layout.addWidget(self.loss_plot)
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._drain_updates)

    def controls(self) -> list[QWidget]:
        return [self.refine_button, self.every]

    def set_session(self, session: AnnotationSession | None) -> None:
        if session is None:
            self.cancel_event.set()
            self._poll.stop()
            self.worker = self.job = None
        self.session = session
        if session is not None:
            self.every.blockSignals(True)
            self.every.setValue(int(session.store.settings["refine_every"]))
            self.every.blockSignals(False)
            self.show_last_round()

    def show_last_round(self) -> None:
        """Draw the last refinement's loss curve from the project's training log."""
        entries = self.session.store.training_log()
        run = entries[-1]["run"] if entries else None
        points = [(e["step"], e["loss"]) for e in entries if e["run"] == run and "loss" in e and "step" in e]
        if not points:
            return
        self.loss_plot.clear(total_steps=points[-1][0])
        for step, loss in points:
            self.loss_plot.add(step, loss)
        failed = run.startswith("failed")
        self.progress.setFormat(f"last refinement: {'failed' if failed else run} ({len(points)} loss reports)")

    def _every_changed(self, value: int) -> None:
        if self.session is not None:
            self.session.store.update_settings(refine_every=int(value))
            self.every_changed.emit(int(value))

    def start_if_due(self) -> None:
        if self.session is not None and self.worker is None and self.session.refine_due():
            self.start()

    def start(self) -> None:
        if self.session is None or self.worker is not None:
            return
        if not self.session.store.accepted_keys():
            self.say("Accept at least one mask before refining.", "warning")
            return
        self.cancel_event = threading.Event()
        self.loss_plot.clear()
        self.progress.setValue(0)
        self.progress.setFormat("preparing the refinement…")
        self.refine_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        worker = create_worker(refine_and_register, self.session, self.cancel_event, _ignore_errors=True)
        worker.yielded.connect(self._started)
        worker.returned.connect(self._finished)
        worker.errored.connect(self._errored)
        self.worker = self.pool.start(worker, self.cancel_event)

    def _started(self, job) -> None:
        self.job = job
        self.loss_plot.clear(total_steps=job.train_config.steps)
        self.progress.setRange(0, job.train_config.steps)
        self.progress.setValue(0)
        if not job.cancelled:
            self.progress.setFormat(f"refining on {len(job.labelled)} images: %v/%m steps")
        self._poll.start()
        self.say(f"Refining on {len(job.labelled)} accepted images in the background; keep working.", toast=False)

    def user_active(self) -> None:
        """The user moves or draws: a refinement on the CPU gives way for a moment, so the viewer answers first."""
        if self.job is not None:
            self.job.user_active()

    def cancel(self) -> None:
        if self.worker is not None:
            self.cancel_event.set()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling…")

    def _drain_updates(self) -> None:
        job = self.job
        if job is None:
            return
        while not job.updates.empty():
            entry = job.updates.get_nowait()
            self.loss_plot.add(entry.step, entry.loss)
            self.progress.setValue(entry.step)

    def _done(self) -> None:
        self._drain_updates()
        self._poll.stop()
        self.worker = self.job = None
        self.refine_button.setEnabled(self.session is not None)
        self.cancel_button.setEnabled(False)

    def _errored(self, err: Exception) -> None:
        self._done()
        self.progress.setFormat("failed")
        self.say(f"Refinement failed: {err}. The previous model stays active.", "error")

    def _finished(self, outcome) -> None:
        result, version = outcome
        job = self.job
        self._done()
        if self.session is None:
            return
        if version is None:
            self.progress.setFormat(result.status)
            self.say(result.message, "warning")
            return
        self.progress.setFormat(f"{version} ready ({result.seconds:.0f} s)")
        self.say(f"Model {version} is active (refined on {len(job.labelled)} images); updating predictions.")
        self.new_version.emit(version)
        self.start_if_due()  # more images were accepted meanwhile
