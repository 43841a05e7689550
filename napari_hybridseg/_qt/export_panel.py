"""The export panel: every accepted mask to an OME-Zarr plate or a folder of PNGs, in a worker with napari's
progress bar, so the viewer stays responsive however many images there are."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from napari.qt.threading import create_worker
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from ..annotation import AnnotationSession
from ..export import EXPORTERS
from .workers import WorkerPool, export_steps


class ExportPanel(QWidget):
    def __init__(self, pool: WorkerPool, say: Callable[..., None], parent: QWidget | None = None):
        super().__init__(parent)
        self.pool, self.say = pool, say
        self.session: AnnotationSession | None = None
        self.worker = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.zarr_button = QPushButton("Export OME-Zarr…")
        self.zarr_button.setToolTip("Every accepted image with its mask, as one OME-Zarr plate")
        self.zarr_button.clicked.connect(self._choose_zarr)
        self.png_button = QPushButton("Export PNG…")
        self.png_button.setToolTip("Every accepted mask as a label PNG named after its image, plus provenance.json")
        self.png_button.clicked.connect(self._choose_png)
        layout.addWidget(self.zarr_button)
        layout.addWidget(self.png_button)

    def controls(self) -> list[QWidget]:
        return [self.zarr_button, self.png_button]

    def set_session(self, session: AnnotationSession | None) -> None:
        self.session = session

    def _choose_zarr(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export accepted masks to OME-Zarr", "masks.zarr", "Zarr (*.zarr)")
        if path:
            self.export("zarr", path)

    def _choose_png(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the PNG masks")
        if folder:
            self.export("png", folder)

    def export(self, fmt: str, path: str | Path):
        """Start exporting every accepted mask as ``fmt`` (zarr or png) to ``path``; returns the worker, or
        None when there is nothing to export or an export runs already."""
        if self.session is None:
            return None
        if self.worker is not None:
            self.say("An export is running; wait for it to finish.", "warning")
            return None
        items = self.session.export_items()
        if not items:
            self.say("No accepted masks to export yet.", "warning")
            return None
        path = Path(path)
        worker = create_worker(export_steps, EXPORTERS[fmt], path, items,
                               _progress={"total": len(items), "desc": f"Exporting {len(items)} masks to {path.name}"},
                               _ignore_errors=True)
        worker.returned.connect(lambda failure: self._finished(worker, path, len(items), failure))
        worker.errored.connect(lambda err: self._finished(worker, path, len(items), str(err)))
        for button in self.controls():
            button.setEnabled(False)
        self.say(f"Exporting {len(items)} accepted masks to {path} in the background…", toast=False)
        self.worker = self.pool.start(worker)
        return worker

    def _finished(self, worker, path: Path, n: int, failure: str | None) -> None:
        if worker is not self.worker:
            return
        self.worker = None
        for button in self.controls():
            button.setEnabled(self.session is not None)
        if failure:
            self.say(f"Export to {path} failed: {failure}", "error")
        else:
            self.say(f"Exported {n} accepted masks to {path}.")
