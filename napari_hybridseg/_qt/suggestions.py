"""The suggestions panel: the unaccepted images to label next by the project's rule, each with why (scored in the
background after every model change), the rule, going there, and the current image's disagreement map with its
colour scale."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget,
)

from ..annotation import AnnotationSession
from ..learn.selection import Pick, rule_for
from .combo import compact_combo
from .disagreement_layer import DISAGREEMENT_LAYER, ColourScale, hide_disagreement, show_disagreement
from .workers import WorkerPool, disagreement_map, freeze_loaded_modules, score_unaccepted

__all__ = ["DISAGREEMENT_LAYER", "SuggestionPanel"]
TOP_N = 5
RANKING_SHOW_INTERVAL_MS = 300  # while images are scored, the ranking shown is updated at most this often
#: the rules of ``learn.selection`` in a user's words
RULE_CHOICES = {
    "auto": "automatic (by how often it refines)",
    "disagreement": "where the samples disagree",
    "coverage": "cover the folder",
    "adaptive": "cover the folder, surprising images first",
}


def rule_in_words(settings: dict) -> str:
    """The project's rule as the user sees it; ``auto`` with the rule it stands for at the project's rounds."""
    rule, every = settings["suggest_by"], int(settings["refine_every"])
    if rule != "auto":
        return RULE_CHOICES[rule]
    rounds = "after every image" if every == 1 else f"after every {every} images"
    return f"{RULE_CHOICES[rule_for(rule, every)]}, as the model refines {rounds}"


class SuggestionPanel(QGroupBox):
    """The top of the suggestions, each with why (click an entry to go there), the rule, and the map checkbox."""

    chosen = Signal(str)
    rule_changed = Signal(str)

    def __init__(self, top: int = TOP_N, parent: QWidget | None = None, viewer=None,
                 pool: WorkerPool | None = None, say: Callable[..., None] | None = None):
        super().__init__("Suggested next", parent)
        self.top, self.viewer, self.pool, self.say = top, viewer, pool, say
        self.session: AnnotationSession | None = None
        self.key: str | None = None
        self.score_worker = self.map_worker = None
        self._progress = None
        layout = QVBoxLayout(self)
        self.status = QLabel("Not scored yet")
        self.status.setWordWrap(True)
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)  # one line each: no per-item size queries on every re-layout
        self.list.setToolTip("The unaccepted images to label next, best first, and why")
        row = self.list.fontMetrics().height() + 1
        self.list.setMaximumHeight(row * top + 2 * self.list.frameWidth() + 4)  # the top rows, no empty ones
        self.list.itemClicked.connect(self._chose)
        self.list.itemActivated.connect(self._chose)
        self.show_map = QCheckBox("Show disagreement")
        self.show_map.setToolTip("Overlay the current image's per-pixel disagreement across diffusion samples")
        self.show_map.toggled.connect(self._show_map_toggled)
        self.scale = ColourScale()
        self.scale.hide()
        self.rule = compact_combo()
        for value, text in RULE_CHOICES.items():
            self.rule.addItem(text, value)
        self.rule.setToolTip("How the next image is chosen. Automatic: where the samples disagree when the model "
                             "refines after every image, cover the folder when it refines after several. Where the "
                             "samples disagree: the model's diffusion samples disagree most. Cover the folder: "
                             "typical images the labels do not cover yet, no two alike in a round. Surprising "
                             "images first: the same, those the model denoises poorly first until 5 are accepted, "
                             "then those its samples disagree on")
        self.rule.activated.connect(lambda i: self.rule_changed.emit(self.rule.itemData(i)))
        by = QHBoxLayout()
        by.addWidget(QLabel("Suggest by"))
        by.addWidget(self.rule, 1)
        layout.addLayout(by)
        for widget in (self.status, self.list, self.show_map, self.scale):
            layout.addWidget(widget)
        self._ranking_timer = QTimer(self)  # one repaint for several scored images
        self._ranking_timer.setSingleShot(True)
        self._ranking_timer.setInterval(RANKING_SHOW_INTERVAL_MS)
        self._ranking_timer.timeout.connect(self._show_scoring_progress)

    def show_rule(self, rule: str) -> None:
        self.rule.setCurrentIndex(max(0, self.rule.findData(rule)))

    def set_suggestions(self, picks: Sequence[Pick]) -> None:
        """Show the top of ``picks``, changing only the rows that differ: rebuilding the list re-lays it
        out and repaints the window, tens of milliseconds of the GUI thread under software OpenGL."""
        shown = picks[: self.top]
        while self.list.count() > len(shown):
            self.list.takeItem(self.list.count() - 1)
        while self.list.count() < len(shown):
            self.list.addItem(QListWidgetItem())
        for row, pick in enumerate(shown):
            item = self.list.item(row)
            text = f"{pick.key} — {pick.reasons[0]}" if pick.reasons else str(pick.key)
            if item.text() != text:
                item.setText(text)
                item.setToolTip(f"{pick.key}: {pick.describe()}")
            if item.data(Qt.ItemDataRole.UserRole) != pick.key:
                item.setData(Qt.ItemDataRole.UserRole, pick.key)

    def keys(self) -> list[str]:
        """The keys listed, top first."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def _chose(self, item: QListWidgetItem) -> None:
        self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    # -- ranking -----------------------------------------------------------------------
    def set_session(self, session: AnnotationSession | None) -> None:
        self._ranking_timer.stop()
        self.session, self.key = session, None
        self.score_worker = self.map_worker = self._progress = None
        self.set_suggestions([])
        self.status.setText("Not scored yet")
        if session is not None:
            self.show_rule(session.settings["suggest_by"])

    def show_ranking(self, compute: bool = True) -> None:
        """Show the session's suggestions; ``compute=False`` shows the last ones planned (by the scoring worker)."""
        if self.session is not None:
            self.set_suggestions(self.session.suggestions(compute))

    def stop_scoring(self, message: str) -> None:
        self._ranking_timer.stop()
        self._progress = None
        if self.score_worker is not None:
            self.score_worker.quit()
            self.score_worker = None
        self.show_ranking()
        self.status.setText(message)

    def start_scoring(self) -> None:
        """Rank the unaccepted images for the active model in the background; an older run stops."""
        if self.session is None:
            return
        self.stop_scoring(f"Scoring the unaccepted images with {self.session.version_label()}…")
        worker = create_worker(score_unaccepted, self.session, _ignore_errors=True)
        worker.yielded.connect(lambda progress, worker=worker: self._scored(worker, progress))
        worker.finished.connect(lambda worker=worker: self._scoring_finished(worker))
        worker.errored.connect(lambda err: self.say(f"Scoring the images failed: {err}", "error"))
        self.score_worker = self.pool.start(worker)
        self.request_map(self.key)  # the map of the new model

    def _scored(self, worker, progress) -> None:
        if worker is self.score_worker:
            self._progress = progress
            if not self._ranking_timer.isActive():
                self._ranking_timer.start()

    def _show_scoring_progress(self) -> None:
        progress = self._progress
        if self.session is None or self.score_worker is None or progress is None:
            return
        self.show_ranking(compute=False)
        self.status.setText(f"Scored {progress.done}/{progress.total} with {self.session.version_label()}…")

    def _scoring_finished(self, worker) -> None:
        if worker is self.score_worker:
            self.score_worker = None
            self._ranking_timer.stop()
            freeze_loaded_modules()  # ranking has loaded torch
            self.show_ranking()
            self.status.setText(f"Unaccepted images ranked with {self.session.version_label()}: "
                                f"{rule_in_words(self.session.settings)}.")

    # -- the map -----------------------------------------------------------------------
    def _show_map_toggled(self, on: bool) -> None:
        self.scale.setVisible(on)
        if on:
            self.request_map(self.key)
        elif self.viewer is not None:
            hide_disagreement(self.viewer, remove=True)

    def request_map(self, key: str | None) -> None:
        """Compute ``key``'s disagreement map in the background, if the map is to be shown."""
        self.key = key
        if self.session is None or key is None or not self.show_map.isChecked():
            return
        hide_disagreement(self.viewer)  # not the map of another image or model meanwhile
        self.scale.set_top(None)
        worker = create_worker(disagreement_map, self.session, key, _ignore_errors=True)
        worker.returned.connect(lambda result, worker=worker: self._map_ready(worker, *result))
        worker.errored.connect(lambda err: self.say(f"The disagreement map failed: {err}", "error"))
        self.map_worker = self.pool.start(worker)

    def _map_ready(self, worker, key: str, pixel_map: np.ndarray) -> None:
        if worker is self.map_worker and key == self.key and self.show_map.isChecked():
            self.map_worker = None
            self.scale.set_top(show_disagreement(self.viewer, pixel_map))
