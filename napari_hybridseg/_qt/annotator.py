"""The image and its mask in napari's layers: showing them, predicting ahead, keeping edits and the label tool.

The mask layer is the user's workspace: an edit not accepted is kept as a draft (shortly after the last
stroke, and on every move), and the label tool, brush size and label the user picked stay picked from one
image to the next (napari puts a layer back into pan/zoom whenever it stops being editable, as it does
while the next image's prediction is on its way).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer, Signal

from ..annotation import EDITED, AnnotationSession
from .layer_pixels import show_pixels
from .workers import WorkerPool, predict_mask, prefetch_likely, refresh_all

IMAGE_LAYER = "hybridseg image"
MASK_LAYER = "hybridseg mask"
MASK_DTYPE = np.uint16
DRAFT_SAVE_DELAY_MS = 1500  # an unaccepted edit is kept this long after the last brush stroke
POSITION_SAVE_DELAY_MS = 1000  # the image shown is written to the project once the user stays on it this long
TOOL_FIELDS = ("mode", "brush_size", "selected_label")


class Annotator(QObject):
    """Shows one image of the session at a time; reports through its signals."""

    mask_shown = Signal(str, str)  # key, where the mask came from: accepted, edited or predicted
    image_failed = Signal(str, str)  # key, why it cannot be shown
    states_changed = Signal()  # an image's state may read differently in the list
    predictions_refreshed = Signal()  # every stale prediction is redone by the active model
    user_active = Signal()  # a move or a brush stroke

    def __init__(self, viewer, pool: WorkerPool, say: Callable[..., None], parent: QObject | None = None):
        super().__init__(parent)
        self.viewer, self.pool, self.say = viewer, pool, say
        self.session: AnnotationSession | None = None
        self.key: str | None = None
        self.edited = False
        self.predict_worker = self.prefetch_worker = self.refresh_worker = None
        self._loading = False
        self._tool: dict | None = None  # the user's label tool, brush size and label
        self.draft_timer = self._timer(DRAFT_SAVE_DELAY_MS, self.keep_draft)
        self.position_timer = self._timer(POSITION_SAVE_DELAY_MS, self.save_position)
        viewer.layers.events.removing.connect(self._layer_removing)

    def _timer(self, interval_ms: int, slot) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        return timer

    def set_session(self, session: AnnotationSession | None) -> None:
        if session is None and self.session is not None:
            self.keep_draft()
            self.save_position()
        self.session, self.key = session, None
        self.predict_worker = self.prefetch_worker = self.refresh_worker = None

    # -- showing -----------------------------------------------------------------------
    def show_image(self, key: str | None) -> bool:
        """Show ``key`` and its mask (predicted in the background when there is none for the active model)."""
        if self.session is None or key is None:
            return False
        self.user_active.emit()
        if key != self.key:
            self.keep_draft()
        try:
            image = self.session.read_image(key)
        except (OSError, ValueError) as err:
            self.states_changed.emit()
            self.image_failed.emit(key, str(err))
            return False
        self.key = self.session.go(key, persist=False)
        self.position_timer.start()
        stale = self.session.is_stale(key)
        if stale:  # first, so the model works on the other core while napari builds the layers
            self.predict_in_background(key)
        self._show_image_layer(image)
        if not stale:
            self._mask_ready(key, *self.session.mask_for(key))
        else:  # the prediction arrives through the event loop, so after this placeholder
            self._set_mask(np.zeros(image.shape[:2], dtype=MASK_DTYPE), editable=False)
            self.states_changed.emit()
        return True

    def _show_image_layer(self, image: np.ndarray) -> None:
        rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
        layers = self.viewer.layers
        if IMAGE_LAYER in layers and layers[IMAGE_LAYER].rgb == rgb:
            show_pixels(layers[IMAGE_LAYER], image)
            return
        if IMAGE_LAYER in layers:
            layers.remove(IMAGE_LAYER)
        self.viewer.add_image(np.array(image), name=IMAGE_LAYER, rgb=rgb)  # a copy it owns: see show_pixels
        if MASK_LAYER in layers:  # keep the mask above the image
            layers.move(layers.index(MASK_LAYER), len(layers))

    def predict_in_background(self, key: str) -> None:
        worker = create_worker(predict_mask, self.session, key, _ignore_errors=True)
        worker.returned.connect(lambda result, key=key: self._mask_ready(key, *result))
        worker.errored.connect(lambda err, key=key: self.image_failed.emit(key, f"prediction failed: {err}"))
        self.predict_worker = self.pool.start(worker)

    def _mask_ready(self, key: str, mask: np.ndarray, origin: str) -> None:
        if key != self.key or self.session is None:
            return  # the user has moved on
        self._set_mask(mask, editable=True)
        self.mask_shown.emit(key, origin)
        self.states_changed.emit()
        self.prefetch()

    def _set_mask(self, mask: np.ndarray, editable: bool) -> None:
        # One dtype for every mask: a dtype change makes napari rebuild the layer's GPU node (slow).
        dtype = MASK_DTYPE if mask.max(initial=0) <= np.iinfo(MASK_DTYPE).max else np.uint32
        mask = np.asarray(mask).astype(dtype, copy=False)
        self._loading = True
        try:
            if MASK_LAYER in self.viewer.layers:
                layer = self.viewer.layers[MASK_LAYER]
                show_pixels(layer, mask)
            else:
                layer = self.viewer.add_labels(np.array(mask), name=MASK_LAYER, opacity=0.5)
                layer.events.paint.connect(self._on_paint)
                layer.events.data.connect(self._on_paint)
                for field in TOOL_FIELDS:
                    getattr(layer.events, field).connect(lambda _event, layer=layer: self._remember_tool(layer))
            if layer.editable != editable:  # each change is a layer event that re-lays out the layer list
                layer.editable = editable
            if editable and self._tool:
                for field, value in self._tool.items():
                    if getattr(layer, field) != value:
                        setattr(layer, field, value)
            if self.viewer.layers.selection.active is not layer:
                self.viewer.layers.selection.active = layer
        finally:
            self._loading = False
        self.edited = False

    def _remember_tool(self, layer) -> None:
        if not self._loading and layer.editable:
            self._tool = {field: getattr(layer, field) for field in TOOL_FIELDS}

    def mask(self) -> np.ndarray | None:
        """A copy of the mask shown, or None when there is none."""
        return np.array(self.viewer.layers[MASK_LAYER].data, copy=True) if MASK_LAYER in self.viewer.layers else None

    # -- predicting ahead and again ------------------------------------------------------
    def prefetch(self) -> None:
        """Predict the images the user will likely open next, so that opening them is instant."""
        if self.session is None or self.prefetch_worker is not None:
            return
        # the worker also chooses the images: that reads every image's record, so not on the GUI thread
        worker = create_worker(prefetch_likely, self.session, _ignore_errors=True)
        worker.finished.connect(lambda worker=worker: self._prefetch_finished(worker))
        worker.errored.connect(lambda err: None)  # the image's own prediction reports any fault when it is shown
        self.prefetch_worker = self.pool.start(worker)

    def _prefetch_finished(self, worker) -> None:
        if worker is self.prefetch_worker:
            self.prefetch_worker = None

    def refresh_predictions(self) -> None:
        """Predict again, with the active model, every image whose prediction is of another model."""
        if self.refresh_worker is not None:
            self.refresh_worker.quit()
        worker = create_worker(refresh_all, self.session)
        worker.yielded.connect(self._prediction_refreshed)
        worker.finished.connect(self.states_changed.emit)
        worker.finished.connect(lambda worker=worker: self._refresh_finished(worker))
        self.refresh_worker = self.pool.start(worker)
        if self.key is not None and not self.edited and self.session.store.record(self.key).state != "accepted":
            self.predict_in_background(self.key)

    def _refresh_finished(self, worker) -> None:
        if worker is self.refresh_worker:
            self.refresh_worker = None
            self.predictions_refreshed.emit()

    def _prediction_refreshed(self, key: str) -> None:
        if key == self.key and not self.edited:
            self._mask_ready(key, *self.session.mask_for(key))

    # -- edits ---------------------------------------------------------------------------
    def _on_paint(self, event=None) -> None:
        if not self._loading:
            self.user_active.emit()
            if not self.edited:
                self.edited = True
                self.states_changed.emit()
            self.draft_timer.start()  # kept even if napari or the machine goes down before the user moves on

    def keep_draft(self) -> None:
        self.draft_timer.stop()
        if self.session is not None and self.key is not None and self.edited and MASK_LAYER in self.viewer.layers:
            self.session.save_draft(self.key, self.viewer.layers[MASK_LAYER].data)
            self.edited = False
            self.states_changed.emit()

    def origin(self, key: str) -> str:
        """accepted, edited or predicted: where the mask shown for ``key`` comes from."""
        if self.edited and key == self.key:
            return EDITED
        return self.session.image_status(key).state

    def save_position(self) -> None:
        self.position_timer.stop()
        if self.session is None:
            return
        try:
            self.session.save_position()
        except OSError as err:  # the masks are safe; only where to resume is not
            self.say(f"Could not save the current image in the project: {err}", "warning")

    def _layer_removing(self, event) -> None:
        if self.viewer.layers[event.index].name == MASK_LAYER:  # the user deletes it, or the viewer closes
            self.keep_draft()
