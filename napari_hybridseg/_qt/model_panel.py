"""The model panel: the project's model versions (pick an older one to roll back) and loading another checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QPushButton, QWidget

from ..annotation import AnnotationSession

DEFAULT_LABEL = "shipped default"


class ModelPanel(QGroupBox):
    """``changed`` is emitted once another version is active (its predictions are then out of date)."""

    changed = Signal()

    def __init__(self, say: Callable[..., None], parent: QWidget | None = None):
        super().__init__("Model", parent)
        self.say = say
        self.session: AnnotationSession | None = None
        layout = QHBoxLayout(self)
        self.combo = QComboBox()
        self.combo.setToolTip("The active model version; pick an older one to roll back")
        self.combo.activated.connect(self._chosen)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Use another napari-hybridseg checkpoint (.safetensors)")
        self.load_button.clicked.connect(self._choose_checkpoint)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.load_button)

    def set_session(self, session: AnnotationSession | None) -> None:
        self.session = session
        if session is not None:
            self.refresh()

    def refresh(self) -> None:
        """List the usable versions, oldest first, the active one selected."""
        store = self.session.store
        self.combo.clear()
        self.combo.addItem(DEFAULT_LABEL, None)
        for v in store.model_versions():
            if v.get("usable", True):
                self.combo.addItem(f"{v['id']} — {v.get('note', '')}", v["id"])
                self.combo.setItemData(self.combo.count() - 1, f"{v['id']}: {v.get('note', '')}",
                                       Qt.ItemDataRole.ToolTipRole)  # the whole note
        self.combo.setCurrentIndex(max(0, self.combo.findData(store.active_model)))

    def _chosen(self, index: int) -> None:
        self.activate(self.combo.itemData(index))

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
        from ..model.checkpoint import CheckpointError

        try:
            version = self.session.import_checkpoint(path)
        except (CheckpointError, OSError) as err:
            self.say(str(err), "error")
            return False
        self.refresh()
        self.say(f"{Path(path).name} is now the model ({version}); refinements start from it.")
        self.changed.emit()
        return True
