"""The annotation dock: open a folder, correct and accept masks, refine in the background, label next what
the model is least sure about. It assembles the panels and passes the session between them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from ..annotation import AnnotationSession, Move
from ..project import ProjectStore
from .annotator import IMAGE_LAYER, MASK_LAYER, Annotator
from .export_panel import ExportPanel
from .gui_thread_gc import GuiThreadGarbageCollector
from .images_panel import ACCEPT_KEY, NEXT_KEY, PREVIOUS_KEY, ImagesPanel, key_label
from .keys import bind_keys
from .model_panel import ModelPanel
from .refine_panel import RefinePanel
from .scroll_column import ScrollColumn
from .status_box import StatusBox
from .suggestions import SuggestionPanel, rule_in_words
from .unit_registry import build_cached_unit_registry
from .viewer_close import on_viewer_closing
from .workers import WorkerPool, check_files, freeze_loaded_modules

__all__ = ["IMAGE_LAYER", "MASK_LAYER", "HybridSegDock"]
SHOWN = {"accepted": "accepted (from {version}); edit it and accept again to replace it",
         "edited": "your unaccepted edit; correct it, then accept ({key})",
         "predicted": "prediction of {version}; correct it, then accept ({key})"}


class HybridSegDock(QWidget):
    def __init__(self, napari_viewer, device: str = "auto", choose_start_model: bool = True):
        """``choose_start_model``: a new project starts from the shipped model that fits its images best (False:
        from the shipped default, for scripts that set the model themselves)."""
        super().__init__()
        build_cached_unit_registry()  # before the first layer, which would otherwise parse pint's units afresh
        self.viewer, self.device = napari_viewer, device
        self._choose_start_model = choose_start_model
        self.session: AnnotationSession | None = None
        self._note = ""  # opens the status lines about the next image shown (e.g. "Saved the mask of …")
        self._first_ranking_due = False
        self._count_worker = None
        self.pool = WorkerPool()
        self._garbage_collector = GuiThreadGarbageCollector(self)  # never in a worker thread: see its module
        self.destroyed.connect(functools.partial(WorkerPool.abandon, self.pool))
        self.annotator = Annotator(napari_viewer, self.pool, self.say, self)
        self._build_ui()
        self._connect()
        on_viewer_closing(self.viewer, canvas_closing=self._viewer_closed, window_closing=self.annotator.keep_draft)
        self.shortcuts = bind_keys(self.viewer, self, {ACCEPT_KEY: self.accept, NEXT_KEY: self.next_image,
                                                       PREVIOUS_KEY: self.previous_image})
        self._set_enabled(False)

    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = ScrollColumn()  # a window too short for every control scrolls the dock
        outer.addWidget(self.scroll_area)
        self.images = ImagesPanel()
        self.model = ModelPanel(self.pool, self.say, self._choose_start_model)
        self.suggestions = SuggestionPanel(viewer=self.viewer, pool=self.pool, say=self.say)
        self.refinement = RefinePanel(self.pool, self.say)
        self.exports = ExportPanel(self.pool, self.say)
        self.status = StatusBox()
        for widget in (self.images, self.model, self.suggestions, self.refinement, self.exports, self.status):
            self.scroll_area.column_layout.addWidget(widget)
        self.scroll_area.column_layout.addStretch(1)

    def _connect(self) -> None:
        images, annotator = self.images, self.annotator
        images.open_folder.connect(self._choose_folder)
        images.use_layers.connect(self._use_layers)
        images.chosen.connect(self.show_image)
        images.previous.connect(self.previous_image)
        images.next.connect(self.next_image)
        images.suggested.connect(self.go_to_suggested)
        images.accept.connect(self.accept)
        images.after_accept_changed.connect(lambda value: self.session.store.update_settings(after_accept=value))
        self.suggestions.rule_changed.connect(self.suggest_by)
        annotator.mask_shown.connect(self._mask_shown)
        annotator.image_failed.connect(self._image_failed)
        annotator.states_changed.connect(self._show_states)
        images.counts_missing.connect(self._count_accepted)
        annotator.user_active.connect(self.refinement.user_active)
        annotator.predictions_refreshed.connect(self.suggestions.start_scoring)
        self.suggestions.chosen.connect(self.show_image)
        self.model.changed.connect(self._model_changed)
        self.refinement.new_version.connect(lambda _version: (self.model.refresh(), self._model_changed()))
        self.refinement.every_changed.connect(lambda _every: self.suggestions.show_ranking())  # auto's rounds

    def _set_enabled(self, enabled: bool) -> None:
        controls = [*self.images.controls(), self.model, self.suggestions, *self.refinement.controls(),
                    *self.exports.controls()]
        for widget in controls:
            widget.setEnabled(enabled)

    @property
    def key(self) -> str | None:
        """The image shown."""
        return self.annotator.key

    def say(self, message: str, level: str = "info", toast: bool = True) -> None:
        """Show ``message`` in the dock's status lines and, unless ``toast`` is False, as a napari notification.
        Routine confirmations (one per accept) skip the notification: the status lines and the image list
        say it already, and a notification per accept would bury the ones that matter. Warnings and errors
        always notify."""
        self.status.setText(message)
        if toast or level != "info":
            {"info": show_info, "warning": show_warning, "error": show_error}[level](message)

    # -- opening and closing ----------------------------------------------------------------
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to label")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path, project_dir: str | Path | None = None) -> bool:
        try:
            store = ProjectStore.open(folder, project_dir)
        except (OSError, ValueError) as err:
            self.say(f"Could not open {folder}: {err}", "error")
            return False
        self._start_session(store, f"{Path(folder).name} ({len(store)} images)")
        return True

    def _use_layers(self) -> None:
        from napari.layers import Image

        layers = {layer.name: np.asarray(layer.data) for layer in self.viewer.layers
                  if isinstance(layer, Image) and layer.name != IMAGE_LAYER}
        if not layers:
            self.say("There are no image layers open.", "warning")
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder for the project store (masks, models)")
        if folder:
            self.open_layers(layers, folder)

    def open_layers(self, images: dict[str, np.ndarray], project_dir: str | Path) -> bool:
        try:
            store = ProjectStore.from_arrays(images, project_dir)
        except (OSError, ValueError) as err:
            self.say(f"Could not use the layers: {err}", "error")
            return False
        self._start_session(store, f"{len(store)} image layers")
        return True

    def _start_session(self, store: ProjectStore, description: str) -> None:
        self.close_project()
        self.session = session = AnnotationSession(store, self.device)
        self.images.project_label.setText(f"<b>{description}</b><br>project: {store.project_dir}")
        self.images.show_settings(store.settings["after_accept"])
        for panel in (self.annotator, self.model, self.suggestions, self.refinement, self.exports):
            panel.set_session(session)
        self._set_enabled(True)
        self._show_states()
        for problem in store.problems:
            show_warning(problem)
        worker = create_worker(check_files, session)  # headers only: every unreadable file is marked early
        worker.yielded.connect(lambda found: found[1] is not None and self._show_states())
        self.pool.start(worker)
        self._first_ranking_due = True  # once the first mask is on screen, so that it has the CPU first
        self.show_image(session.current())

    def close_project(self) -> None:
        """Keep the user's edit, stop background work, forget the session."""
        if self.session is None:
            return
        for panel in (self.annotator, self.model, self.suggestions, self.refinement, self.exports):
            panel.set_session(None)
        self.pool.stop_all()
        self._count_worker = None
        self.session = None

    def _viewer_closed(self) -> None:
        """napari is tearing the viewer down: keep the edit, stop the background work, drop its late results."""
        self.pool.abandon()
        self.close_project()
        self.pool.running.clear()  # their finished signals are blocked: nothing else forgets them
        self._garbage_collector.stop()

    # -- images ---------------------------------------------------------------------------
    def show_image(self, key: str | None, note: str = "") -> None:
        """Show ``key`` and its mask; ``note`` opens the status lines about it (what the user just did)."""
        if self.session is None or key is None:
            return
        self._note = note
        if self.annotator.show_image(key):
            self.suggestions.request_map(key)
            if self.session.is_stale(key) and self.key == key:
                self.status.setText(f"{note}Predicting {key} with {self.session.version_label()}…")

    def _mask_shown(self, key: str, origin: str) -> None:
        self.refinement.loss_plot.warm_up()
        freeze_loaded_modules()
        version = self.session.version_label(self.session.image_status(key).version)
        what = SHOWN[origin].format(version=version, key=key_label(ACCEPT_KEY))
        self.status.setText(f"{self._note}{key}: {what}.")
        self._note = ""  # said once: a later refresh of this mask must not repeat it
        if self._first_ranking_due:
            self._first_ranking_due = False
            self.suggestions.start_scoring()

    def _image_failed(self, key: str, reason: str) -> None:
        self.say(f"Cannot show {key}: {reason}", "error")
        if self._first_ranking_due and self.key is None:
            self._first_ranking_due = False
            self.suggestions.start_scoring()

    def _show_states(self) -> None:
        if self.session is not None:
            self.images.show_states(self.session, self.key, self.annotator.edited)

    def _count_accepted(self) -> None:
        """Count the objects of the accepted masks not counted yet, off the GUI thread (a project may hold
        hundreds), then show the total."""
        if self.session is None or self._count_worker is not None:
            return
        worker = create_worker(self.images.counts.count_missing, self.session, _ignore_errors=True)
        worker.finished.connect(self._accepted_counted)
        self._count_worker = self.pool.start(worker)

    def _accepted_counted(self) -> None:
        self._count_worker = None
        self._show_states()

    def _move(self, move: Move) -> None:
        skipped = "".join(f"Passed over {key}: {self.session.unreadable[key]}. " for key in move.skipped)
        if move.key is None:
            self.say(f"{skipped}{self.key} is {move.why}.", toast=False)
        else:
            self.show_image(move.key, note=skipped)

    def next_image(self) -> None:
        if self.session is not None:
            self._move(self.session.neighbour(+1))

    def previous_image(self) -> None:
        if self.session is not None:
            self._move(self.session.neighbour(-1))

    def go_to_suggested(self) -> None:
        if self.session is None:
            return
        key = self.session.suggest_next()
        why = next((f": {pick.describe()}" for pick in self.session.suggestions() if pick.key == key), "")
        if key is None:
            self.say("Every image is accepted.")
        elif key == self.key:
            self.say(f"{key}, shown now, is the suggested image{why}.", toast=False)
        else:
            self.show_image(key, note=f"Suggested{why}. ")

    def suggest_by(self, rule: str) -> None:
        """Rank the unaccepted images by ``rule`` from now on (saved with the project); the images' signals
        are already scored, so the list changes at once."""
        if self.session is None:
            return
        self.session.store.update_settings(suggest_by=rule)
        self.suggestions.show_ranking()
        self.say(f"Suggesting by: {rule_in_words(self.session.settings)}.", toast=False)

    def accept(self) -> None:
        """Save the mask shown as corrected, then go where the after-accept setting says, and say why."""
        mask = self.annotator.mask() if self.session is not None and self.key is not None else None
        if mask is None:
            return
        accepted = self.key
        try:
            self.session.accept(accepted, mask)
        except (OSError, ValueError) as err:
            self.say(f"Could not save the mask of {accepted}: {err}. Nothing was lost; try again.", "error")
            return
        self.annotator.edited = False
        self._show_states()
        self.suggestions.show_ranking()
        self.refinement.start_if_due()
        move = self.session.after_accept(accepted)
        if move.key is None:
            self.say(f"Saved the mask of {accepted}. Every image is accepted.")
        else:  # the next image's status lines say it: no notification per accept
            self.show_image(move.key, note=f"Saved the mask of {accepted}. Now {move.key}: {move.why}. ")

    # -- models -----------------------------------------------------------------------------
    def _model_changed(self) -> None:
        """Another model is active: its predictions replace the stale ones, then it ranks the images."""
        self.suggestions.stop_scoring(
            f"Will rank the images by {self.session.version_label()} once its predictions are made.")
        self._show_states()  # the predictions of the model before now read as such
        self.annotator.refresh_predictions()

    def load_checkpoint(self, path: str | Path) -> bool:
        return self.model.load_checkpoint(path)

    def start_refine(self) -> None:
        self.refinement.start()

    def cancel_refine(self) -> None:
        self.refinement.cancel()

    def export(self, fmt: str, path: str | Path):
        return self.exports.export(fmt, path)
