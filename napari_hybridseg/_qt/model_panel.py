"""The model panel: which model the project starts from (chosen for the images by default), its versions (pick an
older one to roll back), another shipped model, or another checkpoint (Load…)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..annotation import AnnotationSession
from ..zoo import zoo_models
from .combo import compact_combo
from .workers import WorkerPool, rank_start_models

DEFAULT_LABEL = "shipped default (nuclei)"
ZOO_PREFIX = "start from shipped model: "


class ModelPanel(QGroupBox):
    """``changed`` is emitted once another model is active (its predictions are then out of date).

    A new project starts from the shipped model whose generative fit to its images is best: the choice runs
    in the background, and until it is made the shipped default predicts."""

    changed = Signal()

    def __init__(self, pool: WorkerPool, say: Callable[..., None], choose_start: bool = True,
                 parent: QWidget | None = None):
        super().__init__("Model", parent)
        self.pool, self.say, self.choose_start = pool, say, choose_start
        self.session: AnnotationSession | None = None
        self.choose_worker = None
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.combo = compact_combo()
        self.combo.setToolTip("The active model version; pick an older one to roll back, or another shipped model "
                              "to start from")
        self.combo.activated.connect(self._chosen)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Use another napari-hybridseg checkpoint (.safetensors)")
        self.load_button.clicked.connect(self._choose_checkpoint)
        row.addWidget(self.combo, 1)
        row.addWidget(self.load_button)
        layout.addLayout(row)
        self.why = QLabel()
        self.why.setWordWrap(True)
        self.why.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.why)

    def set_session(self, session: AnnotationSession | None) -> None:
        self.session = session
        self.choose_worker = None
        self.why.setText("")
        if session is not None:
            self.refresh()
            if self.choose_start and session.needs_start_model():
                self.choose_start_model()
            else:
                self._show_start()

    def refresh(self) -> None:
        """List the usable versions, oldest first, the active one selected, then the shipped models."""
        store = self.session.store
        self.combo.clear()
        self.combo.addItem(DEFAULT_LABEL, None)
        for v in store.model_versions():
            if v.get("usable", True):
                self.combo.addItem(f"{v['id']} — {v.get('note', '')}", v["id"])
                self.combo.setItemData(self.combo.count() - 1, f"{v['id']}: {v.get('note', '')}",
                                       Qt.ItemDataRole.ToolTipRole)
        self.combo.setCurrentIndex(max(0, self.combo.findData(store.active_model)))
        self.combo.insertSeparator(self.combo.count())
        for model in zoo_models():
            self.combo.addItem(ZOO_PREFIX + model.describe(), f"zoo:{model.name}")

    # -- the start model ---------------------------------------------------------------------
    def choose_start_model(self) -> None:
        """Rank the shipped models for this project's images in the background, then start from the best."""
        self.why.setText("Choosing the shipped model that knows these images best…")
        worker = create_worker(rank_start_models, self.session, _ignore_errors=True)
        session = self.session
        worker.returned.connect(lambda ranking: self._start_model_ranked(session, ranking))
        worker.errored.connect(lambda err: self._start_model_failed(session, err))
        self.choose_worker = self.pool.start(worker)

    def _start_model_ranked(self, session: AnnotationSession, ranking) -> None:
        from ..learn.choose import explain

        if session is not self.session:
            return  # the project was closed meanwhile
        self.choose_worker = None
        if not session.needs_start_model():
            return  # the user picked a model meanwhile: theirs stands
        why = explain(ranking)
        if not self._use(lambda: session.start_from(ranking[0]), ranking[0].name):
            return
        self.why.setText(f"Start model: <b>{ranking[0].name}</b>, chosen automatically. {why} "
                         "Pick another in the list above if you know better.")

    def _start_model_failed(self, session: AnnotationSession, err: Exception) -> None:
        if session is self.session:
            self.choose_worker = None
            self.why.setText(f"The shipped default stays: no start model could be chosen ({err}).")

    def _show_start(self) -> None:
        """Say which model the project started from (a reopened project)."""
        base = self.session.settings.get("base_model")
        note = next((v.get("note", "") for v in self.session.store.model_versions() if v["id"] == base), "")
        if note:
            self.why.setText(f"Started from {note}")

    # -- user choices -------------------------------------------------------------------------
    def _chosen(self, index: int) -> None:
        choice = self.combo.itemData(index)
        if isinstance(choice, str) and choice.startswith("zoo:"):
            self.start_from_zoo(choice.removeprefix("zoo:"))
        else:
            self.activate(choice)

    def start_from_zoo(self, name: str) -> bool:
        """Start over from the shipped model ``name`` (the versions so far stay, to roll back)."""
        from ..zoo import zoo_model

        path = zoo_model(name).path
        if not self._use(lambda: self.session.import_checkpoint(path, note=f"{name} (shipped), picked by hand"), name):
            return False
        self.why.setText(f"Start model: <b>{name}</b>, picked by hand.")
        return True

    def activate(self, version: str | None) -> bool:
        """Make ``version`` (None: the shipped default) active: a roll back, or forward again."""
        if self.session is None or version == self.session.active_version:
            return False
        try:
            self.session.set_active(version)
        except (KeyError, ValueError, OSError) as err:
            self.say(f"Could not use model {version}: {err}", "error")
            self.refresh()
            return False
        self.say(f"Model {self.session.version_label()} is active; updating predictions.")
        self.changed.emit()
        return True

    def _choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "napari-hybridseg checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.load_checkpoint(path)

    def load_checkpoint(self, path: str | Path) -> bool:
        if self._use(lambda: self.session.import_checkpoint(path), Path(path).name):
            self.why.setText(f"Model loaded from {Path(path).name}.")
            return True
        return False

    def _use(self, make_version: Callable[[], str], what: str) -> bool:
        """Import a model as the project's new start (``make_version`` returns its version) and say so."""
        from ..model.checkpoint import CheckpointError

        try:
            version = make_version()
        except (CheckpointError, OSError, KeyError) as err:
            self.say(str(err), "error")
            return False
        self.refresh()
        self.say(f"{what} is now the model ({version}); refinements start from it.")
        self.changed.emit()
        return True
