"""The model-version registry of a project: checkpoint files plus their lineage."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from ..model.checkpoint import CheckpointError, read_metadata, save_checkpoint
from ._fs import fsync_path, writing
from ._records import jsonable, n_accepted_from_metadata, now_iso

_VERSION_FILE = re.compile(r"^v(\d{4,})\.safetensors$")


class ModelRegistry:
    """Registered versions live in the attributes of one zarr group; files in ``models_dir``.

    A version is registered only after its file is completely written (``save_checkpoint``
    writes atomically), so a crash never leaves a registered version without its file.
    """

    def __init__(self, group, models_dir: Path, metadata_file: Path, lock: threading.RLock):
        self._group = group
        self.models_dir = models_dir
        self._metadata_file = metadata_file
        self._lock = lock
        attrs = group.attrs.asdict()
        self._versions: list[dict[str, Any]] = list(attrs.get("versions", []))
        self._active: str | None = attrs.get("active")
        self._broken: dict[str, str] = {}

    # -- reading -----------------------------------------------------------------------
    @property
    def active(self) -> str | None:
        return self._active

    def versions(self) -> list[dict[str, Any]]:
        return [{**v, "usable": v["id"] not in self._broken} for v in self._versions]

    def _entry(self, version: str) -> dict[str, Any]:
        for v in self._versions:
            if v["id"] == version:
                return v
        known = ", ".join(v["id"] for v in self._versions) or "none yet"
        raise KeyError(f"no model version {version!r} in this project (registered: {known})")

    def path(self, version: str) -> Path:
        return self.models_dir / self._entry(version)["file"]

    def _problem_with(self, version: str) -> str | None:
        try:
            read_metadata(self.path(version))
        except CheckpointError as err:
            return str(err)
        return None

    # -- checking on open ----------------------------------------------------------------
    def check(self) -> list[str]:
        """Find registered versions whose file is missing or unreadable; fall back if active."""
        problems = []
        self._broken = {}
        for v in self._versions:
            reason = self._problem_with(v["id"])
            if reason is not None:
                self._broken[v["id"]] = reason
                problems.append(f"model version {v['id']} cannot be used: {reason}")
        active, seen = self._active, set()
        while active is not None and active not in seen and (active in self._broken or not self._known(active)):
            seen.add(active)
            active = next((v["parent"] for v in self._versions if v["id"] == active), None)
        if active in seen:  # a cycle cannot happen through the API; be safe anyway
            active = None
        if active != self._active:
            problems.append(
                f"the active model {self._active} cannot be used; "
                f"falling back to {active or 'the shipped default model'}"
            )
            self._write(self._versions, active)
        for tmp in self.models_dir.glob(".v*.tmp"):  # left by a crash inside save_checkpoint
            tmp.unlink(missing_ok=True)
        return problems

    def _known(self, version: str) -> bool:
        return any(v["id"] == version for v in self._versions)

    # -- writing -------------------------------------------------------------------------
    def _write(self, versions: list[dict[str, Any]], active: str | None) -> None:
        with writing(self.models_dir.parent):
            self._group.attrs.put({"versions": versions, "active": active})
        fsync_path(self._metadata_file)
        self._versions, self._active = versions, active

    def _next_id(self) -> str:
        numbers = [int(v["id"][1:]) for v in self._versions]
        if self.models_dir.is_dir():
            numbers += [int(m.group(1)) for p in self.models_dir.iterdir() if (m := _VERSION_FILE.match(p.name))]
        return f"v{max(numbers, default=0) + 1:04d}"

    def add(self, model, metadata: dict[str, Any], parent: str | None, note: str, activate: bool) -> str:
        with self._lock:
            if parent is not None:
                self._entry(parent)
            version = self._next_id()
            meta = jsonable({**metadata, "project_version": version, "parent_version": parent}, "metadata")
            path = self.models_dir / f"{version}.safetensors"
            with writing(self.models_dir):
                save_checkpoint(path, model, meta)
            fsync_path(self.models_dir)
            entry = {
                "id": version,
                "parent": parent,
                "created": now_iso(),
                "note": str(note),
                "n_accepted": n_accepted_from_metadata(metadata),
                "file": path.name,
            }
            self._write([*self._versions, entry], version if activate else self._active)
            self._broken.pop(version, None)
            return version

    def set_active(self, version: str | None) -> None:
        with self._lock:
            if version is not None:
                reason = self._problem_with(version)  # also raises KeyError for unknown versions
                if reason is not None:
                    self._broken[version] = reason
                    raise ValueError(f"model version {version} cannot be used: {reason}")
                self._broken.pop(version, None)
            self._write(self._versions, version)
