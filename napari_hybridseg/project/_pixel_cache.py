"""Arrays kept in memory, shared by the viewer and the background work.

The worker that predicts the images the user will likely open next has just
decoded them and written their masks; keeping the pixels and the masks lets the
viewer show such an image without decoding the file or reading the store again
on its own thread (4 ms for a 256² PNG, 1–3 ms for a mask from zarr, far more
for big ones). Every entry is a version of a named thing (a file's size and
modification time, a mask's revision): a new version replaces the old, so a
file changed on disk is decoded again. The arrays are read-only: every caller
shares them.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable

import numpy as np

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_MAX_ITEMS = 32


class ArrayCache:
    """Read-only arrays by (name, version); the least recently used go first past ``max_items`` or
    ``max_bytes``, and an array bigger than ``max_bytes`` is not kept."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_items: int = DEFAULT_MAX_ITEMS):
        self.max_bytes, self.max_items = max_bytes, max_items
        self._items: OrderedDict[tuple[Hashable, Hashable], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, name: Hashable, version: Hashable) -> np.ndarray | None:
        with self._lock:
            array = self._items.get((name, version))
            if array is not None:
                self._items.move_to_end((name, version))
            return array

    def put(self, name: Hashable, version: Hashable, array: np.ndarray) -> np.ndarray:
        """Keep ``array`` (made read-only) as ``name``'s current version; returns it."""
        array.setflags(write=False)
        with self._lock:
            self._forget_versions(name)
            if array.nbytes <= self.max_bytes:
                self._items[(name, version)] = array
                self._bytes += array.nbytes
                while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                    self._forget(next(iter(self._items)))
        return array

    def forget(self, name: Hashable) -> None:
        with self._lock:
            self._forget_versions(name)

    def _forget_versions(self, name: Hashable) -> None:
        for old in [k for k in self._items if k[0] == name]:
            self._forget(old)

    def _forget(self, key: tuple[Hashable, Hashable]) -> None:
        self._bytes -= self._items.pop(key).nbytes

    def __len__(self) -> int:
        return len(self._items)


class PixelCache(ArrayCache):
    """Decoded image files, each version keyed by the file's size and modification time."""

    def read(self, path: Path, decode: Callable[[Path], np.ndarray]) -> np.ndarray:
        """The pixels of ``path``, decoded by ``decode`` unless this version of the file is cached.
        Raises FileNotFoundError when ``path`` is not a file."""
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(path) from None
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(path)
        version = (info.st_size, info.st_mtime_ns)
        cached = self.get(str(path), version)
        if cached is not None:
            return cached
        return self.put(str(path), version, decode(path))
