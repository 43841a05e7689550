"""Decoded image files kept in memory, shared by the viewer and the background work.

The worker that predicts the images the user will likely open next has just
decoded them; keeping the pixels lets the viewer show such an image without
decoding it again on its own thread (4 ms for a 256² PNG, far more for a big
one). An entry is keyed by the file's path, size and modification time, so a
file changed on disk is decoded again. The arrays are read-only: every caller
shares them.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_MAX_ITEMS = 32


class PixelCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_items: int = DEFAULT_MAX_ITEMS):
        self.max_bytes, self.max_items = max_bytes, max_items
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def read(self, path: Path, decode: Callable[[Path], np.ndarray]) -> np.ndarray:
        """The pixels of ``path``, decoded by ``decode`` unless this version of the file is cached.
        Raises FileNotFoundError when ``path`` is not a file."""
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(path) from None
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(path)
        key = (str(path), info.st_size, info.st_mtime_ns)
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
                return cached
        image = decode(path)
        image.setflags(write=False)
        if image.nbytes <= self.max_bytes:
            with self._lock:
                for old in [k for k in self._items if k[0] == key[0]]:  # an earlier version of this file
                    self._forget(old)
                self._items[key] = image
                self._bytes += image.nbytes
                while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                    self._forget(next(iter(self._items)))
        return image

    def _forget(self, key: tuple) -> None:
        self._bytes -= self._items.pop(key).nbytes

    def __len__(self) -> int:
        return len(self._items)
