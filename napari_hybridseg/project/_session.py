"""Session (position, settings) and training log, each in its own zarr group's attributes."""

from __future__ import annotations

import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import zarr

from ..learn.selection import DEFAULT_RULE, RULES
from ._fs import writing
from ._records import jsonable, node_name

#: after an accept, go to the next unaccepted image in the list, or to the most informative one
AFTER_ACCEPT = ("next", "informative")
#: which rule suggests the next image (``learn.selection``)
DEFAULT_SETTINGS: dict[str, Any] = {"refine_every": 5, "after_accept": "next", "suggest_by": DEFAULT_RULE}


def check_settings(changes: dict[str, Any]) -> dict[str, Any]:
    if "refine_every" in changes:
        value = changes["refine_every"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"refine_every must be a whole number of accepted images (1 or more), got {value!r}")
    if "after_accept" in changes and changes["after_accept"] not in AFTER_ACCEPT:
        raise ValueError(f"after_accept must be one of {', '.join(AFTER_ACCEPT)}, got {changes['after_accept']!r}")
    if "suggest_by" in changes and changes["suggest_by"] not in RULES:
        raise ValueError(f"suggest_by must be one of {', '.join(RULES)}, got {changes['suggest_by']!r}")
    return jsonable(changes, "settings")


class Session:
    """``session/`` attributes: the current image and the settings."""

    def __init__(self, group: zarr.Group, where: Path):
        self._group = group
        self._where = where
        self._attrs: dict[str, Any] = group.attrs.asdict()

    @property
    def position(self) -> str | None:
        return self._attrs.get("position")

    @property
    def settings(self) -> Mapping[str, Any]:
        return MappingProxyType({**DEFAULT_SETTINGS, **self._attrs.get("settings", {})})

    def update(self, **changes: Any) -> None:
        attrs = {**self._attrs, **changes}
        with writing(self._where):
            self._group.attrs.put(attrs)
        self._attrs = attrs

    def update_settings(self, changes: dict[str, Any]) -> None:
        self.update(settings={**self._attrs.get("settings", {}), **check_settings(changes)})


class TrainingLog:
    """``training_log/`` lists the runs; ``training_log/<run>/`` holds that run's entries."""

    def __init__(self, root: zarr.Group, where: Path, lock: threading.RLock):
        self._root = root
        self._where = where
        self._lock = lock
        self._runs: dict[str, list[dict[str, Any]]] | None = None  # read on first use

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        if self._runs is None:
            runs = self._root["training_log"].attrs.asdict().get("runs", [])
            self._runs = {r: list(self._root[f"training_log/{node_name(r)}"].attrs.asdict()["entries"]) for r in runs}
        return self._runs

    def append(self, run_id: str, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            runs = self._load()
            new = jsonable(list(entries), "training log entries")
            group = f"training_log/{node_name(run_id)}"
            with writing(self._where):
                if run_id not in runs:
                    self._root.create_group(group, attributes={"run": run_id, "entries": new}, overwrite=True)
                    self._root["training_log"].attrs.put({"runs": [*runs, run_id]})
                else:
                    self._root[group].attrs.put({"run": run_id, "entries": runs[run_id] + new})
            runs[run_id] = runs.get(run_id, []) + new

    def entries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            runs = self._load()
            selected = [run_id] if run_id is not None else list(runs)
            return [{"run": run, **entry} for run in selected for entry in runs.get(run, [])]

    def runs(self) -> list[str]:
        with self._lock:
            return list(self._load())
