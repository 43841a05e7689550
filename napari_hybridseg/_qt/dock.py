"""The annotation dock: open a folder, correct and accept masks, refine in the background,
label next what the model is least sure about."""

from __future__ import annotations

import functools
import gc
import sys
import threading
from pathlib import Path

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QThreadPool, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..annotation import EDITED, AnnotationSession
from ..export import export_ome_zarr, export_png
from ..project import ProjectStore
from .gui_thread_gc import GuiThreadGarbageCollector
from .layer_pixels import show_pixels
from .loss_plot import LossPlot
from .progress_bar import ProgressBar
from .scroll_column import ScrollColumn
from .suggestions import SuggestionPanel, hide_disagreement, show_disagreement
from .unit_registry import build_cached_unit_registry
from .viewer_close import on_viewer_closing

IMAGE_LAYER = "hybridseg image"
MASK_LAYER = "hybridseg mask"
MASK_DTYPE = np.uint16
STATE_MARKS = {"accepted": "✓", "predicted": "·", "unlabelled": " "}
ACCEPT_KEY, NEXT_KEY, PREVIOUS_KEY = "Shift-A", "PageDown", "PageUp"
STATUS_LINES = 4
DRAFT_SAVE_DELAY_MS = 1500  # an unaccepted edit is kept this long after the last brush stroke
POSITION_SAVE_DELAY_MS = 1000  # the image shown is written to the project once the user stays on it this long
RANKING_SHOW_INTERVAL_MS = 300  # while images are scored, the ranking shown is updated at most this often


def _one_torch_thread(only_if_loaded: bool = False) -> None:
    """Worker threads predict on one torch thread (the setting is per OS thread): with
    a refinement on the other core, more would starve the viewer's own thread.
    ``only_if_loaded`` is for work that may need no torch at all (predicting from a
    cached ONNX graph): importing it costs over a second."""
    if only_if_loaded and "torch" not in sys.modules:
        return
    import torch

    torch.set_num_threads(1)


def _predict_mask(session: AnnotationSession, key: str):
    _one_torch_thread(only_if_loaded=True)
    return session.mask_for(key)


def _refine_and_register(session: AnnotationSession, cancel: threading.Event):
    """Make the job (it reads the accepted images and loads the base model) and yield it to the viewer,
    train it (in a child process), register the new version and load it for prediction: all off the GUI thread."""
    job = session.make_refine_job(cancel=cancel)
    yield job
    result = session.run_refine(job)
    version = session.finish_refine(job, result)
    if version is not None:
        _one_torch_thread()
        session.segmenter(version)
    return result, version


def _refresh_all(session: AnnotationSession):
    _one_torch_thread()
    yield from session.refresh_predictions()


def _prefetch_likely(session: AnnotationSession):
    _one_torch_thread(only_if_loaded=True)
    yield from session.refresh_predictions(session.prefetch_keys())


def _score_unaccepted(session: AnnotationSession):
    _one_torch_thread()
    yield from session.score_unaccepted()


def _disagreement_map(session: AnnotationSession, key: str):
    _one_torch_thread()
    return key, session.disagreement_map(key)


def _abandon(workers: dict) -> None:
    """The dock is gone (its viewer closed): stop its background work, whose results would reach deleted widgets."""
    for worker, cancel in list(workers.items()):
        worker.signals.blockSignals(True)
        worker.quit()
        if cancel is not None:
            cancel.set()


@functools.cache  # once per process, and once more when torch has been imported
def _freeze_startup_objects(torch_loaded: bool) -> None:
    """Exempt everything alive now (napari, Qt, torch: millions of objects) from Python's cyclic garbage
    collector. Otherwise each full collection walks all of them, holding the GIL for 100–200 ms: a
    visible freeze whichever thread triggers it. Objects made later are still collected."""
    gc.freeze()


def _freeze_loaded_modules() -> None:
    _freeze_startup_objects("torch" in sys.modules)


class HybridSegDock(QWidget):
    def __init__(self, napari_viewer, device: str = "auto"):
        super().__init__()
        build_cached_unit_registry()  # before the first layer, which would otherwise parse pint's units afresh
        self.viewer = napari_viewer
        self.device = device
        self.session: AnnotationSession | None = None
        self.key: str | None = None
        self._mask_edited = False
        self._loading_mask = False
        self._status_note = ""  # opens the status lines about the image shown (e.g. "Saved the mask of …")
        self._refine_job = None
        self._refine_cancel = threading.Event()  # set to stop the refinement in progress
        self._refine_worker = None
        self._refresh_worker = None
        self._predict_worker = None
        self._first_ranking_due = False
        self._score_worker = None
        self._map_worker = None
        self._prefetch_worker = None
        self._workers: dict = {}  # running worker → the event that cancels it, if any
        self._garbage_collector = GuiThreadGarbageCollector(self)  # never in a worker thread: see its module
        self.destroyed.connect(functools.partial(_abandon, self._workers))
        self._build_ui()
        self._poll = QTimer(self)
        self._poll.setInterval(150)
        self._poll.timeout.connect(self._drain_training_updates)
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_SAVE_DELAY_MS)
        self._draft_timer.timeout.connect(self._keep_draft)
        self._position_timer = QTimer(self)
        self._position_timer.setSingleShot(True)
        self._position_timer.setInterval(POSITION_SAVE_DELAY_MS)
        self._position_timer.timeout.connect(self._save_position)
        self._ranking_timer = QTimer(self)  # one repaint for several scored images
        self._ranking_timer.setSingleShot(True)
        self._ranking_timer.setInterval(RANKING_SHOW_INTERVAL_MS)
        self._ranking_timer.timeout.connect(self._show_scoring_progress)
        self._scoring_progress = None
        self.viewer.layers.events.removing.connect(self._layer_removing)
        on_viewer_closing(self.viewer, canvas_closing=self._viewer_closed, window_closing=self._keep_draft)
        for key, action in ((ACCEPT_KEY, self.accept), (NEXT_KEY, self.next_image), (PREVIOUS_KEY, self.previous_image)):
            self.viewer.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)
        self._set_enabled(False)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = ScrollColumn()  # a window too short for every control scrolls the dock
        outer.addWidget(self.scroll_area)
        layout = self.scroll_area.column_layout

        source = QHBoxLayout()
        self.open_button = QPushButton("Open folder…")
        self.open_button.clicked.connect(self._choose_folder)
        self.layers_button = QPushButton("Use open image layers")
        self.layers_button.clicked.connect(self._use_layers)
        source.addWidget(self.open_button)
        source.addWidget(self.layers_button)
        layout.addLayout(source)
        self.project_label = QLabel("No project open")
        self.project_label.setWordWrap(True)
        layout.addWidget(self.project_label)

        model_box = QGroupBox("Model")
        model_layout = QHBoxLayout(model_box)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("The active model version; pick an older one to roll back")
        self.model_combo.activated.connect(self._model_chosen)
        self.checkpoint_button = QPushButton("Load…")
        self.checkpoint_button.setToolTip("Use another napari-hybridseg checkpoint (.safetensors)")
        self.checkpoint_button.clicked.connect(self._choose_checkpoint)
        model_layout.addWidget(self.model_combo, 1)
        model_layout.addWidget(self.checkpoint_button)
        layout.addWidget(model_box)

        self.image_list = QListWidget()
        self.image_list.setUniformItemSizes(True)  # one line each: no per-item size queries on every re-layout
        self.image_list.setMinimumHeight(120)
        self.image_list.itemActivated.connect(lambda item: self.show_image(item.data(Qt.ItemDataRole.UserRole)))
        self.image_list.itemClicked.connect(lambda item: self.show_image(item.data(Qt.ItemDataRole.UserRole)))
        layout.addWidget(self.image_list)

        nav = QHBoxLayout()
        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.clicked.connect(self.previous_image)
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(self.next_image)
        self.suggested_button = QPushButton("Go to suggested")
        self.suggested_button.clicked.connect(self.go_to_suggested)
        for b in (self.previous_button, self.next_button, self.suggested_button):
            nav.addWidget(b)
        layout.addLayout(nav)
        self.suggestions = SuggestionPanel()
        self.suggestions.chosen.connect(self.show_image)
        self.suggestions.show_map.toggled.connect(self._show_map_toggled)
        layout.addWidget(self.suggestions)
        self.accept_button = QPushButton(f"Accept mask ({ACCEPT_KEY.replace('-', '+')})")
        self.accept_button.setStyleSheet("font-weight: bold; padding: 6px;")
        self.accept_button.clicked.connect(self.accept)
        layout.addWidget(self.accept_button)

        refine_box = QGroupBox("Refinement")
        refine_layout = QVBoxLayout(refine_box)
        every = QHBoxLayout()
        every.addWidget(QLabel("Refine after every"))
        self.refine_every = QSpinBox()
        self.refine_every.setRange(1, 1000)
        self.refine_every.setValue(5)
        self.refine_every.valueChanged.connect(self._refine_every_changed)
        every.addWidget(self.refine_every)
        every.addWidget(QLabel("accepted images"))
        every.addStretch(1)
        refine_layout.addLayout(every)
        buttons = QHBoxLayout()
        self.refine_button = QPushButton("Refine now")
        self.refine_button.clicked.connect(self.start_refine)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_refine)
        buttons.addWidget(self.refine_button)
        buttons.addWidget(self.cancel_button)
        refine_layout.addLayout(buttons)
        self.progress = ProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        refine_layout.addWidget(self.progress)
        self.loss_plot = LossPlot()
        refine_layout.addWidget(self.loss_plot)
        layout.addWidget(refine_box)

        export = QHBoxLayout()
        self.export_zarr_button = QPushButton("Export OME-Zarr…")
        self.export_zarr_button.clicked.connect(self._choose_zarr_export)
        self.export_png_button = QPushButton("Export PNG…")
        self.export_png_button.clicked.connect(self._choose_png_export)
        export.addWidget(self.export_zarr_button)
        export.addWidget(self.export_png_button)
        layout.addLayout(export)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        # a fixed height: a message that wraps differently must not re-lay out (and repaint) the whole window
        self.status.setFixedHeight(self.status.fontMetrics().lineSpacing() * STATUS_LINES + 4)
        self.status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.model_combo, self.checkpoint_button, self.image_list, self.previous_button, self.next_button,
                  self.suggested_button, self.suggestions, self.accept_button, self.refine_button, self.refine_every,
                  self.export_zarr_button, self.export_png_button):
            w.setEnabled(enabled)

    def _start_worker(self, worker, cancel: threading.Event | None = None) -> None:
        workers = self._workers
        workers[worker] = cancel
        worker.finished.connect(lambda: workers.pop(worker, None))
        worker.start()

    def say(self, message: str, level: str = "info", toast: bool = True) -> None:
        """Show ``message`` in the dock's status lines and, unless ``toast`` is False, as a napari notification.
        Routine confirmations (one per accept) skip the notification: the status lines and the image list's ✓
        say it already, and a notification per accept would bury the ones that matter. Warnings and errors
        always notify."""
        self.status.setText(message)
        self.status.setToolTip(message)  # in full, should it need more than STATUS_LINES lines
        if toast or level != "info":
            {"info": show_info, "warning": show_warning, "error": show_error}[level](message)

    # ------------------------------------------------------------------ opening
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
        self.session = AnnotationSession(store, self.device)
        self.project_label.setText(f"<b>{description}</b><br>project: {store.project_dir}")
        self.refine_every.blockSignals(True)
        self.refine_every.setValue(int(store.settings["refine_every"]))
        self.refine_every.blockSignals(False)
        self._set_enabled(True)
        self._refresh_models()
        self._refresh_list()
        for problem in store.problems:
            show_warning(problem)
        self._first_ranking_due = True  # once the first mask is on screen, so that it has the CPU first
        self.show_image(self.session.current())

    def _start_first_ranking(self) -> None:
        if self._first_ranking_due and self.session is not None:
            self._first_ranking_due = False
            self._start_scoring()

    def close_project(self) -> None:
        """Keep the user's edit, stop background work, forget the session."""
        if self.session is None:
            return
        self._keep_draft()
        self._save_position()
        self._ranking_timer.stop()
        self._refine_cancel.set()
        workers = (self._refine_worker, self._refresh_worker, self._predict_worker, self._score_worker,
                   self._map_worker, self._prefetch_worker)
        for worker in workers:
            if worker is not None:
                worker.quit()
        QThreadPool.globalInstance().waitForDone(60_000)  # napari's workers run in the global pool
        self._poll.stop()
        self._refine_worker = self._refresh_worker = self._predict_worker = self._refine_job = None
        self._score_worker = self._map_worker = self._prefetch_worker = None
        self.session = None
        self.key = None

    # ------------------------------------------------------------------ models
    def _refresh_models(self) -> None:
        store = self.session.store
        self.model_combo.clear()
        self.model_combo.addItem("shipped default", None)
        for v in store.model_versions():
            if v.get("usable", True):
                self.model_combo.addItem(f"{v['id']} — {v.get('note', '')}", v["id"])
        index = self.model_combo.findData(store.active_model)
        self.model_combo.setCurrentIndex(max(0, index))

    def _model_chosen(self, index: int) -> None:
        version = self.model_combo.itemData(index)
        if version == self.session.active_version:
            return
        self.session.set_active(version)
        self.say(f"Model {self.session.version_label()} is active; updating predictions.")
        self._start_refresh()

    def _choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "napari-hybridseg checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.load_checkpoint(path)

    def load_checkpoint(self, path: str | Path) -> bool:
        from ..model.checkpoint import CheckpointError

        try:
            version = self.session.import_checkpoint(path)
        except (CheckpointError, OSError) as err:
            self.say(str(err), "error")
            return False
        self._refresh_models()
        self.say(f"{Path(path).name} is now the model ({version}); refinements start from it.")
        self._start_refresh()
        return True

    # ------------------------------------------------------------------ images
    def _refresh_list(self) -> None:
        """Show each image's state; items whose text is unchanged are left alone (a rebuild repaints the
        whole list, about 10 ms of the GUI thread on every navigation)."""
        store = self.session.store
        keys = self.session.keys()
        listed = [self.image_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.image_list.count())]
        self.image_list.blockSignals(True)
        if listed != keys:
            self.image_list.clear()
            for key in keys:
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, key)
                self.image_list.addItem(item)
        for row, key in enumerate(keys):
            state = store.record(key).state
            item = self.image_list.item(row)
            text = f"{STATE_MARKS[state]} {key}  ({state})"
            if item.text() != text:
                item.setText(text)
            if key == self.key and self.image_list.currentRow() != row:
                self.image_list.setCurrentItem(item)
        self.image_list.blockSignals(False)

    def _keep_draft(self) -> None:
        self._draft_timer.stop()
        if self.session is not None and self.key is not None and self._mask_edited and MASK_LAYER in self.viewer.layers:
            self.session.save_draft(self.key, self.viewer.layers[MASK_LAYER].data)
            self._mask_edited = False

    def show_image(self, key: str, note: str = "") -> None:
        """Show ``key`` and its mask; ``note`` opens the status lines about it (what the user just did)."""
        if self.session is None or key is None:
            return
        self._status_note = note
        self._user_active()
        if key != self.key:
            self._keep_draft()
        try:
            image = self.session.store.read_image(key)
        except (OSError, ValueError) as err:
            self.say(f"Cannot show {key}: {err}", "error")
            self._refresh_list()
            return
        self.key = self.session.go(key, persist=False)
        self._position_timer.start()
        stale = self.session.is_stale(key)
        if stale:  # first, so the model works on the other core while napari builds the layers
            self._predict_in_background(key)
        rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
        if IMAGE_LAYER in self.viewer.layers and self.viewer.layers[IMAGE_LAYER].rgb == rgb:
            show_pixels(self.viewer.layers[IMAGE_LAYER], image)
        else:
            if IMAGE_LAYER in self.viewer.layers:
                self.viewer.layers.remove(IMAGE_LAYER)
            self.viewer.add_image(np.array(image), name=IMAGE_LAYER, rgb=rgb)  # a copy it owns: see show_pixels
            if MASK_LAYER in self.viewer.layers:  # keep the mask above the image
                self.viewer.layers.move(self.viewer.layers.index(MASK_LAYER), len(self.viewer.layers))
        if not stale:
            mask, origin = self.session.mask_for(key)
            self._show_mask(key, mask, origin)
        else:  # the prediction arrives through the event loop, so after this placeholder
            self._set_mask(np.zeros(image.shape[:2], dtype=MASK_DTYPE), editable=False)
            self._refresh_list()
        self._request_map()

    def _predict_in_background(self, key: str) -> None:
        self.status.setText(f"{self._status_note}Predicting {key} with {self.session.version_label()}…")
        worker = create_worker(_predict_mask, self.session, key)
        worker.returned.connect(lambda result, key=key: self._show_mask(key, *result))
        worker.errored.connect(lambda err: self.say(f"Prediction failed: {err}", "error"))
        worker.errored.connect(lambda _err: self._start_first_ranking())
        self._predict_worker = worker
        self._start_worker(worker)

    def _show_mask(self, key: str, mask: np.ndarray, origin: str) -> None:
        if key != self.key:
            return  # the user has moved on
        self._set_mask(mask, editable=True)
        self.loss_plot.warm_up()
        _freeze_loaded_modules()
        where = {"accepted": "accepted mask", EDITED: "your unaccepted edit",
                 "predicted": f"prediction of {self.session.version_label()}"}[origin]
        self.status.setText(f"{self._status_note}{key}: {where}. Correct it, then accept ({ACCEPT_KEY.replace('-', '+')}).")
        self._status_note = ""  # said once: a later refresh of this mask must not repeat it
        self._refresh_list()
        self._prefetch()
        self._start_first_ranking()

    def _prefetch(self) -> None:
        """Predict the images the user will likely open next, so that opening them is instant."""
        if self.session is None or self._prefetch_worker is not None:
            return
        # the worker also chooses the images: that reads every image's record, so not on the GUI thread
        worker = create_worker(_prefetch_likely, self.session)
        worker.finished.connect(lambda worker=worker: self._prefetch_finished(worker))
        worker.errored.connect(lambda err: None)  # the image's own prediction reports any fault when it is shown
        self._prefetch_worker = worker
        self._start_worker(worker)

    def _prefetch_finished(self, worker) -> None:
        if worker is self._prefetch_worker:
            self._prefetch_worker = None

    def _set_mask(self, mask: np.ndarray, editable: bool) -> None:
        # One dtype for every mask: a dtype change makes napari rebuild the layer's GPU node (slow).
        dtype = MASK_DTYPE if mask.max(initial=0) <= np.iinfo(MASK_DTYPE).max else np.uint32
        mask = np.asarray(mask).astype(dtype, copy=False)
        self._loading_mask = True
        try:
            if MASK_LAYER in self.viewer.layers:
                layer = self.viewer.layers[MASK_LAYER]
                show_pixels(layer, mask)
            else:
                layer = self.viewer.add_labels(np.array(mask), name=MASK_LAYER, opacity=0.5)
                layer.events.paint.connect(self._on_paint)
                layer.events.data.connect(self._on_paint)
            if layer.editable != editable:  # each change is a layer event that re-lays out the layer list
                layer.editable = editable
            if self.viewer.layers.selection.active is not layer:
                self.viewer.layers.selection.active = layer
        finally:
            self._loading_mask = False
        self._mask_edited = False

    def _save_position(self) -> None:
        self._position_timer.stop()
        if self.session is None:
            return
        try:
            self.session.save_position()
        except OSError as err:  # the masks are safe; only where to resume is not
            self.say(f"Could not save the current image in the project: {err}", "warning")

    def _on_paint(self, event=None) -> None:
        if not self._loading_mask:
            self._user_active()
            self._mask_edited = True
            self._draft_timer.start()  # kept even if napari or the machine goes down before the user moves on

    def _layer_removing(self, event) -> None:
        if self.viewer.layers[event.index].name == MASK_LAYER:  # the user deletes it, or the viewer closes
            self._keep_draft()

    def _viewer_closed(self) -> None:
        """napari is tearing the viewer down: keep the edit, stop the background work, drop its late results."""
        _abandon(self._workers)
        self.close_project()
        self._workers.clear()  # their finished signals are blocked: nothing else forgets them
        self._garbage_collector.stop()

    def next_image(self) -> None:
        if self.session is not None:
            self.show_image(self.session.step(+1, persist=False))

    def previous_image(self) -> None:
        if self.session is not None:
            self.show_image(self.session.step(-1, persist=False))

    def go_to_suggested(self) -> None:
        if self.session is None:
            return
        key = self.session.suggest_next()
        if key is None:
            self.say("Every image is accepted.")
        elif key == self.key:
            self.say(f"{key}, shown now, is the suggested image.", toast=False)
        else:
            self.show_image(key)

    # ------------------------------------------------------------------ accepting
    def accept(self) -> None:
        if self.session is None or self.key is None or MASK_LAYER not in self.viewer.layers:
            return
        mask = np.array(self.viewer.layers[MASK_LAYER].data, copy=True)
        try:
            self.session.accept(self.key, mask)
        except (OSError, ValueError) as err:
            self.say(f"Could not save the mask of {self.key}: {err}. Nothing was lost; try again.", "error")
            return
        self._mask_edited = False
        accepted = self.key
        self._refresh_list()
        self._show_ranking()
        if self.session.refine_due() and self._refine_worker is None:
            self.start_refine()
        next_key = self.session.suggest_next()
        if next_key is None:
            self.say(f"Saved the mask of {accepted}. Every image is accepted.")
        else:  # the next image's status lines say it: no notification per accept
            self.show_image(next_key, note=f"Saved the mask of {accepted}. ")

    def _refine_every_changed(self, value: int) -> None:
        if self.session is not None:
            self.session.store.update_settings(refine_every=int(value))

    # ------------------------------------------------------------------ refinement
    def start_refine(self) -> None:
        if self.session is None or self._refine_worker is not None:
            return
        if not self.session.store.accepted_keys():
            self.say("Accept at least one mask before refining.", "warning")
            return
        self._refine_cancel = threading.Event()
        self.loss_plot.clear()
        self.progress.setValue(0)
        self.progress.setFormat("preparing the refinement…")
        self.refine_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        worker = create_worker(_refine_and_register, self.session, self._refine_cancel)
        worker.yielded.connect(self._refine_started)
        worker.returned.connect(self._refine_finished)
        worker.errored.connect(self._refine_errored)
        self._refine_worker = worker
        self._start_worker(worker, self._refine_cancel)

    def _refine_started(self, job) -> None:
        self._refine_job = job
        self.loss_plot.clear(total_steps=job.train_config.steps)
        self.progress.setRange(0, job.train_config.steps)
        self.progress.setValue(0)
        if not job.cancelled:
            self.progress.setFormat(f"refining on {len(job.labelled)} images: %v/%m steps")
        self._poll.start()
        self.status.setText(f"Refining on {len(job.labelled)} accepted images in the background; keep working.")

    def _user_active(self) -> None:
        """The user moves or draws: a refinement on the CPU gives way for a moment, so the viewer answers first."""
        if self._refine_job is not None:
            self._refine_job.user_active()

    def cancel_refine(self) -> None:
        if self._refine_worker is not None:
            self._refine_cancel.set()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling…")

    def _drain_training_updates(self) -> None:
        job = self._refine_job
        if job is None:
            return
        while not job.updates.empty():
            entry = job.updates.get_nowait()
            self.loss_plot.add(entry.step, entry.loss)
            self.progress.setValue(entry.step)

    def _refine_done(self) -> None:
        self._drain_training_updates()
        self._poll.stop()
        self._refine_worker = None
        self._refine_job = None
        self.refine_button.setEnabled(self.session is not None)
        self.cancel_button.setEnabled(False)

    def _refine_errored(self, err: Exception) -> None:
        self._refine_done()
        self.progress.setFormat("failed")
        self.say(f"Refinement failed: {err}. The previous model stays active.", "error")

    def _refine_finished(self, outcome) -> None:
        result, version = outcome
        job = self._refine_job
        self._refine_done()
        if self.session is None:
            return
        if version is None:
            self.progress.setFormat(result.status)
            self.say(result.message, "warning")
            return
        self.progress.setFormat(f"{version} ready ({result.seconds:.0f} s)")
        self._refresh_models()
        self.say(f"Model {version} is active (refined on {len(job.labelled)} images); updating predictions.")
        self._start_refresh()
        if self.session.refine_due():
            self.start_refine()  # more images were accepted meanwhile

    def _start_refresh(self) -> None:
        if self._refresh_worker is not None:
            self._refresh_worker.quit()
        worker = create_worker(_refresh_all, self.session)
        worker.yielded.connect(self._prediction_refreshed)
        worker.finished.connect(self._refresh_list)
        # Qt's pool has one thread per core: scoring waits for the refresh, so one stays free for the viewer
        self._stop_scoring(f"Will rank the images by {self.session.version_label()} once its predictions are made.")
        worker.finished.connect(lambda worker=worker: self._refresh_finished(worker))
        self._refresh_worker = worker
        self._start_worker(worker)
        if self.key is not None and not self._mask_edited and self.session.store.record(self.key).state != "accepted":
            self._predict_in_background(self.key)

    def _refresh_finished(self, worker) -> None:
        if worker is self._refresh_worker:
            self._refresh_worker = None
            self._start_scoring()

    def _prediction_refreshed(self, key: str) -> None:
        if key == self.key and not self._mask_edited:
            mask, origin = self.session.mask_for(key)
            self._show_mask(key, mask, origin)

    # ------------------------------------------------------------------ suggestions
    def _stop_scoring(self, message: str) -> None:
        self._ranking_timer.stop()
        self._scoring_progress = None
        if self._score_worker is not None:
            self._score_worker.quit()
            self._score_worker = None
        self._show_ranking()
        self.suggestions.status.setText(message)

    def _start_scoring(self) -> None:
        """Rank the unaccepted images for the active model in the background; an older run stops."""
        if self.session is None:
            return
        self._stop_scoring(f"Scoring the unaccepted images with {self.session.version_label()}…")
        worker = create_worker(_score_unaccepted, self.session)
        worker.yielded.connect(lambda progress, worker=worker: self._scored(worker, progress))
        worker.finished.connect(lambda worker=worker: self._scoring_finished(worker))
        worker.errored.connect(lambda err: self.say(f"Scoring the images failed: {err}", "error"))
        self._score_worker = worker
        self._start_worker(worker)
        self._request_map()  # the map of the new model

    def _show_ranking(self) -> None:
        self.suggestions.set_ranking(self.session.ranking())

    def _scored(self, worker, progress) -> None:
        if worker is self._score_worker:
            self._scoring_progress = progress
            if not self._ranking_timer.isActive():
                self._ranking_timer.start()

    def _show_scoring_progress(self) -> None:
        progress = self._scoring_progress
        if self.session is None or self._score_worker is None or progress is None:
            return
        self._show_ranking()
        self.suggestions.status.setText(
            f"Scored {progress.done}/{progress.total} with {self.session.version_label()}…")

    def _scoring_finished(self, worker) -> None:
        if worker is self._score_worker:
            self._score_worker = None
            self._ranking_timer.stop()
            _freeze_loaded_modules()  # ranking has loaded torch
            self._show_ranking()
            self.suggestions.status.setText(
                f"Unaccepted images ranked by the disagreement of {self.session.version_label()}.")

    def _show_map_toggled(self, on: bool) -> None:
        if on:
            self._request_map()
        else:
            hide_disagreement(self.viewer, remove=True)

    def _request_map(self) -> None:
        """Compute the current image's disagreement map in the background, if it is to be shown."""
        if self.session is None or self.key is None or not self.suggestions.show_map.isChecked():
            return
        hide_disagreement(self.viewer)  # not the map of another image or model meanwhile
        worker = create_worker(_disagreement_map, self.session, self.key)
        worker.returned.connect(lambda result, worker=worker: self._map_ready(worker, *result))
        worker.errored.connect(lambda err: self.say(f"The disagreement map failed: {err}", "error"))
        self._map_worker = worker
        self._start_worker(worker)

    def _map_ready(self, worker, key: str, pixel_map: np.ndarray) -> None:
        if worker is self._map_worker and key == self.key and self.suggestions.show_map.isChecked():
            self._map_worker = None
            show_disagreement(self.viewer, pixel_map)

    # ------------------------------------------------------------------ export
    def _choose_zarr_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export accepted masks to OME-Zarr", "masks.zarr", "Zarr (*.zarr)")
        if path:
            self.export("zarr", path)

    def _choose_png_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the PNG masks")
        if folder:
            self.export("png", folder)

    def export(self, fmt: str, path: str | Path) -> Path | None:
        if self.session is None:
            return None
        items = self.session.export_items()
        if not items:
            self.say("No accepted masks to export yet.", "warning")
            return None
        try:
            out = (export_ome_zarr if fmt == "zarr" else export_png)(path, items)
        except (OSError, ValueError) as err:
            self.say(f"Export failed: {err}", "error")
            return None
        self.say(f"Exported {len(items)} accepted masks to {out}.")
        return out
