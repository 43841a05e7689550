"""The label-efficiency benchmark's records: one JSON line per finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .plan import PRETRAINED

KEY = ("pair", "protocol", "variant", "method", "pretrain", "n_labels", "seed")


def _without_pretraining_tag(row: dict[str, Any]) -> dict[str, Any]:
    """Scratch and forest have no pretraining; early records named them after the pretrained arms' setting
    (the same runs)."""
    if row.get("method") not in PRETRAINED and row.get("pretrain"):
        return {**row, "pretrain": ""}
    return row


class Records:
    """Finished runs, one JSON line each, identified by the fields in ``key``; a run already recorded is never repeated."""

    def __init__(self, path: Path, key: tuple[str, ...] = KEY):
        self.path = path
        self.key = key
        self.rows: list[dict[str, Any]] = []
        self._keys: set[tuple] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = _without_pretraining_tag(json.loads(line))
                    if self._key(row) not in self._keys:  # the first run of a key is the one on record
                        self.rows.append(row)
                        self._keys.add(self._key(row))

    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[k] for k in self.key)

    def has(self, **key: Any) -> bool:
        return self._key(key) in self._keys

    def add(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        self.rows.append(row)
        self._keys.add(self._key(row))
